#!/usr/bin/python3
"""The relay (issue 7): the database side dials out; the gateway holds no database password.

PostgreSQL here listens on its Unix socket only (listen_addresses = ''), and asks for SCRAM there (only
the superuser the test itself uses is trusted). The relay is the only thing that reaches it; the gateway's
connections say `relay: dc1, target: app` and nothing else. Clients connect to the gateway as usual.
"""
import glob
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import (BUILD, PGBIN, Certs, Gateway, Postgres, Relay, main, make_tempdir,  # noqa: E402
                     psql)

import psycopg  # noqa: E402

DB_PW = "relay-only-scram-pw-7f3a"
S = {}


def target(pg, name="app", **kw):
    t = dict(name=name, host=pg.sock, port=pg.port, database="app", user="gw_scram", password="env:RELAY_DB_PW")
    t.update(kw)
    return t


def setup_module():
    pg = Postgres(conf_extra="listen_addresses = ''\n").start().setup_roles()
    pg.sql("ALTER ROLE gw_scram PASSWORD '%s'" % DB_PW)
    with open(os.path.join(pg.data, "pg_hba.conf"), "w") as f:
        f.write("local all postgres trust\nlocal all all scram-sha-256\n")
    pg.sql("SELECT pg_reload_conf()")
    certs = Certs()
    gw = Gateway(connections=[dict(name="main", relay="dc1", target="app"),
                              dict(name="elsewhere", relay="dc1", target="nosuch"),
                              dict(name="nowhere", relay="dc9", target="app"),
                              dict(name="broken", relay="dc1", target="down")],
                 tls=certs, relay_listener=True).start()
    gw.add_identity("dc1", kind="relay")
    tok = gw.issue_token("dc1")
    relay = Relay(gw, "dc1", tok, [target(pg), target(pg, name="down", host="/nonexistent-pgmoat-dir")],
                  env={"RELAY_DB_PW": DB_PW}).start()
    ident, atok = gw.agent("agent-1")
    S.update(pg=pg, gw=gw, certs=certs, relay=relay, relay_token=tok, agent=(ident, atok),
             dsn=gw.dsn(ident, atok, dbname="main", sslmode="verify-full"))


def dsn(dbname="main", **kw):
    ident, tok = S["agent"]
    return S["gw"].dsn(ident, tok, dbname=dbname, sslmode="verify-full", **kw)


def q(sql, dbname="main"):
    r = psql(dsn(dbname), sql, args=["-qAt", "-v", "ON_ERROR_STOP=1"])
    return r


def test_database_listens_on_its_unix_socket_only():
    assert S["pg"].sql("SHOW listen_addresses") == ""
    s = socket.socket()
    try:
        assert s.connect_ex(("127.0.0.1", S["pg"].port)) != 0, "PostgreSQL accepts TCP"
    finally:
        s.close()


def test_psql_through_gateway_and_relay():
    r = q("SELECT current_database(), current_user, inet_server_addr() IS NULL")
    assert r.returncode == 0, r.stderr
    # inet_server_addr() is NULL on a Unix-socket connection: the relay reached the socket
    assert r.stdout.strip() == "app|gw_scram|t", r.stdout


def test_gateway_holds_no_database_password():
    gw = S["gw"]
    with open(gw.config) as f:
        assert DB_PW not in f.read()
    assert "password" not in gw.config_text
    found = []
    for p in glob.glob(os.path.join(gw.dir, "state.db*")):
        with open(p, "rb") as f:
            if DB_PW.encode() in f.read():
                found.append(p)
    assert glob.glob(os.path.join(gw.dir, "state.db")), "no state store to check"
    assert not found, found
    assert DB_PW not in gw.read_log()
    assert DB_PW not in S["relay"].read_log()


def test_libpq_pipeline_mode():
    r = subprocess.run([os.path.join(BUILD, "pipeline"), dsn()], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "FAIL" not in r.stdout


def test_copy_100000_rows():
    assert q("CREATE TABLE IF NOT EXISTS relay_copy (id int, v text); TRUNCATE relay_copy").returncode == 0
    data = "".join("%d\trow %d\n" % (i, i) for i in range(100000))
    r = psql(dsn(), args=["-qAt", "-v", "ON_ERROR_STOP=1", "-c", "COPY relay_copy FROM STDIN"], input=data)
    assert r.returncode == 0, r.stderr
    r = psql(dsn(), args=["-qAt", "-c", "COPY (SELECT * FROM relay_copy ORDER BY id) TO STDOUT"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == data


def test_pgbench():
    env = dict(os.environ, PGCONNECT_TIMEOUT="10")
    r = subprocess.run([PGBIN + "/pgbench", "-i", "-s", "1", "-q", dsn()], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([PGBIN + "/pgbench", "-S", "-c", "4", "-j", "2", "-t", "300", "-n", dsn()],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "number of transactions actually processed: 1200/1200" in r.stdout, r.stdout
    r = subprocess.run([PGBIN + "/pgbench", "-S", "-C", "-c", "2", "-t", "50", "-n", dsn()],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "number of transactions actually processed: 100/100" in r.stdout, r.stdout


def test_cancel_through_relay():
    with psycopg.connect(dsn(), autocommit=True) as c:
        t0 = time.time()
        threading.Timer(0.5, c.cancel).start()
        try:
            c.execute("SELECT pg_sleep(30)")
            raise AssertionError("the sleep was not cancelled")
        except psycopg.errors.QueryCanceled:
            pass
        assert time.time() - t0 < 10
        assert c.execute("SELECT 7").fetchone()[0] == 7


def test_unlisted_target_refused_by_the_relay():
    r = q("SELECT 1", dbname="elsewhere")
    assert r.returncode != 0
    assert 'relay dc1 has no target "nosuch"' in r.stderr, r.stderr
    assert "nosuch" in S["relay"].read_log() and "refused" in S["relay"].read_log()


def test_target_down_is_reported_and_the_relay_lives_on():
    # the target's socket does not exist: the relay's login fails at once, the client hears why
    for _ in range(3):
        r = q("SELECT 1", dbname="broken")
        assert r.returncode != 0
        assert "relay dc1 cannot log in to its target down" in r.stderr, r.stderr
    assert S["relay"].proc.poll() is None, S["relay"].read_log()[-3000:]
    r = q("SELECT 5")
    assert r.returncode == 0 and r.stdout.strip() == "5", r.stderr


def test_large_values_both_ways():
    # larger than the relay's buffers and than TLS records: nothing may stall inside TLS read-ahead
    r = psql(dsn(), args=["-qAt", "-v", "ON_ERROR_STOP=1", "-c",
                          "SELECT md5(repeat('pgmoat', 2000000)), length(repeat('pgmoat', 2000000))"])
    assert r.returncode == 0, r.stderr
    r2 = psql(dsn(), args=["-qAt", "-c", "SELECT repeat('pgmoat', 2000000)"], timeout=60)
    assert r2.returncode == 0 and len(r2.stdout.strip()) == 12000000, (r2.returncode, len(r2.stdout))
    big = "x" * 6000000
    r3 = psql(dsn(), args=["-qAt", "-v", "ON_ERROR_STOP=1", "-f", "-"],
              input="SELECT length('%s');\n" % big, timeout=60)
    assert r3.returncode == 0 and r3.stdout.strip() == "6000000", (r3.stdout[:200], r3.stderr[:500])


def test_relay_with_no_tunnel_named():
    r = q("SELECT 1", dbname="nowhere")
    assert r.returncode != 0
    assert 'relay "dc9" has no tunnel' in r.stderr, r.stderr


def test_relay_identity_is_not_a_client():
    gw = S["gw"]
    r = psql(gw.dsn("dc1", S["relay_token"], dbname="main", sslmode="verify-full"), "SELECT 1")
    assert r.returncode != 0
    assert "is a relay" in r.stderr, r.stderr
    st, body = gw.api("GET", "/v1/sessions", token=S["relay_token"])
    assert st == 401, (st, body)


def test_relays_listed():
    gw = S["gw"]
    st, body = gw.api("GET", "/v1/relays")
    assert st == 200, body
    by = {r["name"]: r for r in body}
    assert by["dc1"]["state"] == "connected", by
    assert by["dc1"]["tunnels_idle"] >= 1
    assert len(by["dc1"]["instances"]) == 1
    assert by["dc1"]["instances"][0]["targets"] == ["app", "down"]
    assert {c["name"] for c in by["dc1"]["connections"]} == {"main", "elsewhere", "broken"}
    assert by["dc9"]["state"] == "no tunnel"
    r = gw.cli("relays")
    assert "dc1" in r.stdout and "connected" in r.stdout and "dc9" in r.stdout, r.stdout
    r = gw.cli("relays", "--json")
    assert json.loads(r.stdout)


def _doctor(args):
    env = dict(os.environ, PGMOAT_ADMIN_TOKEN=S["gw"].admin_token, RELAY_DB_PW=DB_PW)
    env.pop("PGMOAT_TOKEN", None)
    return subprocess.run([os.path.join(BUILD, "pgmoat")] + args, capture_output=True, text=True, env=env, timeout=120)


def test_doctor_through_the_relay():
    """pgmoat doctor on the gateway: a relay connection is checked by the relay, with its credentials."""
    r = _doctor(["doctor", "-c", S["gw"].config, "--json"])
    out = json.loads(r.stdout)
    by = {c["name"]: c for c in out["connections"]}
    assert "error" not in by["main"], by["main"]
    ids = {f["id"] for f in by["main"]["findings"]}
    assert "role_superuser" not in ids and "listen_network" not in ids, ids  # Unix socket only, no superuser
    assert all(f["role"] == "gw_scram" for f in by["main"]["findings"] if f.get("role")), by["main"]
    assert 'no target "nosuch"' in by["elsewhere"]["error"], by["elsewhere"]
    assert 'relay "dc9" has no tunnel' in by["nowhere"]["error"], by["nowhere"]
    assert r.returncode == 2 and out["exit"] == 2  # two connections could not be checked
    assert "running the doctor's checks on target app" in S["relay"].read_log()
    # a high finding travels back through the relay, and the text report names the relay
    S["pg"].sql("ALTER ROLE gw_scram SUPERUSER")
    try:
        r = _doctor(["doctor", "-c", S["gw"].config])
        assert "connection main (through relay dc1, target app: checked by the relay)" in r.stdout, r.stdout
        assert "HIGH    role_superuser" in r.stdout, r.stdout
        r = _doctor(["relay", "doctor", "-c", S["relay"].config, "--json"])
        out = json.loads(r.stdout)
        by = {c["name"]: c for c in out["connections"]}
        assert "role_superuser" in {f["id"] for f in by["app"]["findings"]}, by["app"]
        assert out["summary"]["high"] >= 1 and "error" in by["down"], out
        assert r.returncode == 2, r.stdout + r.stderr  # a target not checked outranks the high finding
    finally:
        S["pg"].sql("ALTER ROLE gw_scram NOSUPERUSER")


def test_relay_doctor_alone():
    """pgmoat relay doctor: the database side alone, before any gateway (this one needs none)."""
    r = _doctor(["relay", "doctor", "-c", S["relay"].config])
    assert "target app (gw_scram@%s:%d/app" % (S["pg"].sock, S["pg"].port) in r.stdout, r.stdout
    assert "0 high" in r.stdout, r.stdout
    # the other target's database is not there: said, and the exit code says something was not checked
    assert "target down (" in r.stdout and "not checked: cannot connect" in r.stdout, r.stdout
    assert r.returncode == 2, r.stdout + r.stderr
    r = _doctor(["relay", "doctor", "--help"])
    assert r.returncode == 0 and "before any gateway exists" in r.stdout


def test_wrong_ca_sends_nothing():
    """A relay that cannot verify the gateway's certificate aborts the handshake: no hello, no token."""
    other = Certs()
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(other.cert, other.key)
    got = {"app": b"", "handshakes": 0, "failed": 0}

    def serve():
        srv.settimeout(10)
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            got["handshakes"] += 1
            try:
                with ctx.wrap_socket(c, server_side=True) as t:
                    t.settimeout(3)
                    while True:
                        b = t.recv(4096)
                        if not b:
                            break
                        got["app"] += b
            except (ssl.SSLError, OSError):
                got["failed"] += 1

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    fake_gw = type("G", (), {"relay_port": port, "certs": S["certs"]})()
    r = Relay(fake_gw, "dc1", S["relay_token"], [target(S["pg"])], env={"RELAY_DB_PW": DB_PW}).start(wait=False)
    deadline = time.time() + 10
    while time.time() < deadline and "TLS handshake failed" not in r.read_log():
        time.sleep(0.05)
    time.sleep(0.3)
    r.stop()
    srv.close()
    th.join(5)
    assert "TLS handshake failed" in r.read_log(), r.read_log()
    assert got["handshakes"] >= 1 and got["failed"] >= 1, got
    assert got["app"] == b"", got
    assert "logged in" not in r.read_log()


def main_session():
    return psycopg.connect(dsn(), autocommit=True)


def _expect_lost(conn, within):
    t0 = time.time()
    while time.time() - t0 < within + 2:
        try:
            conn.execute("SELECT 1")
        except psycopg.OperationalError as e:
            return time.time() - t0, str(e)
        time.sleep(0.05)
    raise AssertionError("the session outlived its tunnel")


def test_z1_relay_killed_then_restarted():
    relay = S["relay"]
    conns = [main_session() for _ in range(3)]
    for c in conns:
        assert c.execute("SELECT 1").fetchone()[0] == 1
    relay.kill9()
    t_kill = time.time()
    # Each open session is ended by the gateway with FATAL 08006 as soon as its tunnel drops.
    time.sleep(1.0)
    for c in conns:
        try:
            c.execute("SELECT 1")
            raise AssertionError("a session on a lost tunnel still works")
        except psycopg.OperationalError as e:
            assert 'tunnel through relay "dc1" was lost' in str(e), str(e)
        c.close()
    assert time.time() - t_kill < 3
    r = q("SELECT 1")
    assert r.returncode != 0 and 'relay "dc1" has no tunnel' in r.stderr, r.stderr
    relay.start()
    r = q("SELECT 2")
    assert r.returncode == 0 and r.stdout.strip() == "2", r.stderr


def test_z2_sessions_end_with_08006_within_a_second():
    """The FATAL reaches a client that is waiting on a query, within 1 s of the relay dying."""
    relay = S["relay"]
    p = subprocess.Popen(["psql", "-X", "-v", "VERBOSITY=verbose", dsn(), "-c", "SELECT pg_sleep(20)"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    assert p.poll() is None, p.communicate()
    relay.kill9()
    t_kill = time.time()
    out, err = p.communicate(timeout=10)
    elapsed = time.time() - t_kill
    assert elapsed < 1.0, elapsed
    assert "FATAL:  08006: pgmoat:" in err and 'relay "dc1"' in err, err
    relay.start()


def test_z3_two_relays_one_killed():
    gw = S["gw"]
    second = Relay(gw, "dc1", S["relay_token"], [target(S["pg"])], env={"RELAY_DB_PW": DB_PW}).start()
    st, body = gw.api("GET", "/v1/relays")
    inst = [r for r in body if r["name"] == "dc1"][0]["instances"]
    assert len(inst) == 2, inst
    S["relay"].kill9()
    for i in range(10):
        r = q("SELECT %d" % i)
        assert r.returncode == 0 and r.stdout.strip() == str(i), r.stderr
    S["relay"], old = second, S["relay"]
    old.stop()


def test_z4_gateway_restart_relay_reconnects():
    gw, relay = S["gw"], S["relay"]
    before = relay.logins()
    gw.stop()
    time.sleep(1.0)
    gw.start()
    t0 = time.time()
    relay.wait_logged_in(timeout=5.0, after=before)
    assert time.time() - t0 < 5.0
    r = q("SELECT 3")
    assert r.returncode == 0 and r.stdout.strip() == "3", r.stderr


def test_z5_token_revoked_closes_tunnels():
    gw, relay = S["gw"], S["relay"]
    c = main_session()
    assert c.execute("SELECT 1").fetchone()[0] == 1
    st, toks = gw.api("GET", "/v1/tokens")
    tid = [t["id"] for t in toks if t["identity"] == "dc1" and t["active"]][0]
    st, out = gw.api("DELETE", "/v1/tokens/" + tid)
    assert st == 200, out
    assert out["sessions_ended"] >= 1, out
    time.sleep(0.5)
    try:
        c.execute("SELECT 1")
        raise AssertionError("a session on a revoked relay's tunnel still works")
    except psycopg.OperationalError:
        pass
    c.close()
    r = q("SELECT 1")
    assert r.returncode != 0 and 'relay "dc1" has no tunnel' in r.stderr, r.stderr
    time.sleep(1.0)
    assert "revoked" in relay.read_log(), relay.read_log()[-2000:]
    st, body = gw.api("GET", "/v1/relays")
    assert [r for r in body if r["name"] == "dc1"][0]["state"] == "no tunnel", body
    relay.stop()
    gw.stop()


if __name__ == "__main__":
    main(globals())
