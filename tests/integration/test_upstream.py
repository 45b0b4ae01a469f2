#!/usr/bin/python3
"""The upstream side of the gateway (issue 2): login with SCRAM-SHA-256, md5 and cleartext password;
sslmode disable / require / verify-full against a PostgreSQL with ssl=on (and a wrong CA refused
with 08006); the pool (a backend reused by sequential sessions, with no session state leaking
between them, and a size limit that makes a second session wait); client startup parameters
applied upstream; BackendKeyData minted by the gateway."""
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import Certs, Gateway, Postgres, main, psql  # noqa: E402
from rawpg import RawSession, query_error  # noqa: E402

import psycopg  # noqa: E402

S = {}


def _conn(name, user="gw_scram", pwvar="GW_SCRAM_PW", sslmode="disable", **kw):
    d = dict(name=name, host="127.0.0.1", port=S["pg"].port, database="app", user=user,
             password="env:" + pwvar, sslmode=sslmode)
    d.update(kw)
    return d


def setup_module():
    certs = Certs()
    other = Certs()  # an unrelated CA: the database's certificate does not chain to it
    pg = Postgres(ssl_certs=certs, conf_extra="log_connections = on\n").start().setup_roles()
    S.update(pg=pg, certs=certs, other=other)
    conns = [
        _conn("scram"),
        _conn("md5", user="gw_md5", pwvar="GW_MD5_PW"),
        _conn("plain", user="gw_plain", pwvar="GW_PLAIN_PW"),
        _conn("ssl-disable"),
        _conn("ssl-require", sslmode="require"),
        _conn("ssl-verify", sslmode="verify-full", sslrootcert="file:" + certs.ca),
        _conn("ssl-wrongca", sslmode="verify-full", sslrootcert="file:" + other.ca),
        _conn("reuse"),
        _conn("params"),
        _conn("single", pool=1),
        _conn("keys"),
    ]
    env = {"GW_SCRAM_PW": "scram-pw", "GW_MD5_PW": "md5-pw", "GW_PLAIN_PW": "plain-pw"}
    gw = Gateway(pg, tls=certs, connections=conns, plaintext_loopback=False, env=env).start()
    S["gw"] = gw
    S["ident"], S["token"] = gw.agent("up-agent")


def connect(dbname, **kw):
    return psycopg.connect(S["gw"].dsn(S["ident"], S["token"], dbname=dbname), connect_timeout=10, **kw)


def pg_log():
    with open(os.path.join(S["pg"].dir, "log"), errors="replace") as f:
        return f.read()


def metrics():
    import urllib.request
    with urllib.request.urlopen(S["gw"].url + "/metrics", timeout=5) as r:
        return r.read().decode()


def pool_gauge(conn, state):
    m = re.search(r'pgmoat_pool_connections\{connection="%s",state="%s"\} (\d+)' % (re.escape(conn), state),
                  metrics())
    return int(m.group(1)) if m else None


def pool_waiting(conn):
    m = re.search(r'pgmoat_pool_waiting\{connection="%s"\} (\d+)' % re.escape(conn), metrics())
    return int(m.group(1)) if m else None


def wait_for(pred, timeout=5.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


# ---- login methods ----

def _check_login(dbname, role, method):
    with connect(dbname) as c:
        assert c.execute("SELECT current_user, current_database()").fetchone() == (role, "app")
        c.execute("CREATE TEMP TABLE t(x int)")
        c.execute("INSERT INTO t SELECT generate_series(1, 100)")
        assert c.execute("SELECT sum(x) FROM t").fetchone() == (5050,)
    # The server log names the method it used to authenticate the role (log_connections).
    wait_for(lambda: re.search(r'connection authenticated: identity="%s" method=%s' % (role, re.escape(method)),
                               pg_log()), what="the %s login of %s in the server log" % (method, role))


def test_login_scram():
    _check_login("scram", "gw_scram", "scram-sha-256")


def test_login_md5():
    _check_login("md5", "gw_md5", "md5")


def test_login_cleartext_password():
    _check_login("plain", "gw_plain", "password")


# ---- sslmode ----

def _upstream_ssl(dbname):
    with connect(dbname) as c:
        return c.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()


def test_sslmode_disable():
    ssl_on, _ = _upstream_ssl("ssl-disable")
    assert ssl_on is False


def test_sslmode_require():
    ssl_on, version = _upstream_ssl("ssl-require")
    assert ssl_on is True and version in ("TLSv1.2", "TLSv1.3"), version


def test_sslmode_verify_full():
    ssl_on, version = _upstream_ssl("ssl-verify")
    assert ssl_on is True and version in ("TLSv1.2", "TLSv1.3"), version


def test_sslmode_verify_full_wrong_ca_08006():
    r = RawSession(S["gw"].port, S["ident"], S["token"], "ssl-wrongca", cafile=S["certs"].ca)
    if r.ok:  # refused at the first statement instead of at login: also acceptable
        rows, err = r.query("SELECT 1")
        r.close()
    else:
        err = r.error
    assert err and err["S"] == "FATAL" and err["C"] == "08006", err
    assert err["M"].startswith("pgmoat: "), err
    assert "TLS" in err["M"] or "certificate" in err["M"], err
    # nothing reached the database as gw_scram over that connection: a fresh login still works elsewhere
    assert _upstream_ssl("ssl-verify")[0] is True


# ---- the pool ----

def test_pool_reuses_backend_without_leaking_state():
    c1 = connect("reuse", autocommit=True)
    c1.execute("CREATE TABLE IF NOT EXISTS leak_check(x int)")
    c1.execute("TRUNCATE leak_check")
    pid1 = c1.execute("SELECT pg_backend_pid()").fetchone()[0]
    c1.execute("SET work_mem = '7MB'")
    c1.execute("SET search_path = pg_catalog")
    c1.execute("SET myapp.flag = 'on'")
    c1.execute("CREATE TEMP TABLE tmp_leak(x int)")
    c1.execute("PREPARE leak_stmt AS SELECT 42")
    c1.execute("LISTEN leak_chan")
    c1.execute("SELECT pg_advisory_lock(4242)")
    assert c1.execute("SHOW work_mem").fetchone() == ("7MB",)
    assert c1.execute("SELECT count(*) FROM pg_prepared_statements").fetchone() == (1,)
    # End inside an open transaction with an uncommitted row.
    c1.execute("BEGIN")
    c1.execute("INSERT INTO public.leak_check VALUES (1)")
    c1.close()

    # The backend goes back to the pool once it is reset.
    wait_for(lambda: pool_gauge("reuse", "idle") == 1, what="the backend to be idle in the pool")
    assert pool_gauge("reuse", "total") == 1

    with connect("reuse", autocommit=True) as c2:
        pid2 = c2.execute("SELECT pg_backend_pid()").fetchone()[0]
        assert pid2 == pid1, "a second sequential session got a new backend (%d, then %d)" % (pid1, pid2)
        assert c2.execute("SHOW work_mem").fetchone() == ("4MB",)
        assert c2.execute("SHOW search_path").fetchone() == ('"$user", public',)
        assert c2.execute("SELECT coalesce(current_setting('myapp.flag', true), '')").fetchone() != ("on",)
        assert c2.execute("SELECT to_regclass('pg_temp.tmp_leak')").fetchone() == (None,)
        assert c2.execute("SELECT count(*) FROM pg_prepared_statements").fetchone() == (0,)
        assert c2.execute("SELECT count(*) FROM pg_listening_channels()").fetchone() == (0,)
        assert c2.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
                          ).fetchone() == (0,)
        assert c2.execute("SELECT count(*) FROM public.leak_check").fetchone() == (0,)
        assert c2.execute("SELECT 1").fetchone() == (1,)
        # the name session 1 prepared is free again
        c2.execute("PREPARE leak_stmt AS SELECT 43")
        assert c2.execute("EXECUTE leak_stmt").fetchone() == (43,)


def test_pool_churn_reuses_backends():
    """Agents connect once per tool call: back-to-back short sessions keep using pooled backends.
    (A session that arrives while the last backend is still being reset may open one more, so
    the pool can grow by a few; it must not open a backend per session.)"""
    wait_for(lambda: pool_gauge("reuse", "idle") == pool_gauge("reuse", "total"), what="an idle pool")
    pids = []
    for i in range(20):
        with connect("reuse", autocommit=True) as c:
            pids.append(c.execute("SELECT pg_backend_pid()").fetchone()[0])
    assert len(set(pids)) <= 4, "20 sequential sessions used %d backends" % len(set(pids))
    assert pool_gauge("reuse", "total") <= 4


def test_login_without_query_takes_no_server():
    """Health checks that log in and leave at once do not touch the pool."""
    wait_for(lambda: pool_gauge("reuse", "idle") == pool_gauge("reuse", "total"), what="an idle pool")
    before = pool_gauge("reuse", "total")
    for i in range(10):
        connect("reuse").close()
    assert pool_gauge("reuse", "total") == before
    assert pool_gauge("reuse", "idle") == before


def test_pool_size_limit_makes_second_session_wait():
    a = connect("single", autocommit=True)
    pid_a = a.execute("SELECT pg_backend_pid()").fetchone()[0]
    out = {}

    def second():
        try:
            with connect("single", autocommit=True) as b:
                out["logged_in"] = time.time()
                out["pid"] = b.execute("SELECT pg_backend_pid()").fetchone()[0]
                out["done"] = time.time()
        except Exception as e:  # reported below
            out["error"] = e

    t = threading.Thread(target=second, daemon=True)
    t.start()
    wait_for(lambda: pool_waiting("single") == 1 or "error" in out or "done" in out, what="the second session to queue")
    time.sleep(0.8)
    assert "error" not in out, out.get("error")
    assert "done" not in out, "the second session ran while the only pooled backend was in use"
    assert pool_gauge("single", "total") == 1
    # The first session still works while the second waits.
    assert a.execute("SELECT 7").fetchone() == (7,)
    released = time.time()
    a.close()
    t.join(10)
    assert "error" not in out, out.get("error")
    assert "done" in out, "the second session never ran"
    assert out["done"] - released < 3.0, "the second session ran %.1fs after the first ended" % (out["done"] - released)
    assert out["pid"] == pid_a
    assert pool_gauge("single", "total") == 1


# ---- startup parameters ----

def test_startup_parameters_applied_upstream():
    gw = S["gw"]
    dsn = gw.dsn(S["ident"], S["token"], dbname="params", application_name="upstream-app-test",
                 options="-c statement_timeout=1234")
    with psycopg.connect(dsn, autocommit=True) as c:
        assert c.info.parameter_status("application_name") == "upstream-app-test"
        assert c.execute("SHOW application_name").fetchone() == ("upstream-app-test",)
        assert c.execute("SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()"
                         ).fetchone() == ("upstream-app-test",)
        assert c.execute("SHOW statement_timeout").fetchone() == ("1234ms",)
        # the timeout is really in force upstream
        err = query_error(c, "SELECT pg_sleep(3)")
        assert err and err[1] == "57014", err
        assert c.execute("SELECT 1").fetchone() == (1,)
        # the gateway's session list shows the application name too
        st, sessions = gw.api("GET", "/v1/sessions")
        assert st == 200 and any(s["application_name"] == "upstream-app-test" for s in sessions), sessions
    # psql's own application_name and a plain libpq options value
    r = psql(gw.dsn(S["ident"], S["token"], dbname="params", options="-c work_mem=5MB"),
             "SHOW work_mem", args=["-At"], env={"PGAPPNAME": "psql-through-pgmoat"})
    assert r.returncode == 0 and r.stdout.strip() == "5MB", (r.stdout, r.stderr)
    # a later session on the same backend does not inherit either
    with connect("params", autocommit=True) as c:
        assert c.execute("SHOW statement_timeout").fetchone() == ("0",)
        assert c.execute("SHOW application_name").fetchone() == ("",)


def test_startup_settings_survive_reset_all_and_discard_all():
    """SPEC: after the client's RESET ALL / DISCARD ALL the gateway re-applies the startup settings."""
    dsn = S["gw"].dsn(S["ident"], S["token"], dbname="params", application_name="keep-me",
                      options="-c statement_timeout=4321")
    with psycopg.connect(dsn, autocommit=True) as c:
        for reset in ("RESET ALL", "DISCARD ALL", "SET work_mem = '7MB'; RESET ALL"):
            c.execute("SET application_name = 'changed'; SET statement_timeout = 99")
            c.execute(reset)
            assert c.execute("SHOW application_name").fetchone() == ("keep-me",), reset
            assert c.execute("SHOW statement_timeout").fetchone() == ("4321ms",), reset
            assert c.execute("SHOW work_mem").fetchone() == ("4MB",), reset
            assert c.info.parameter_status("application_name") == "keep-me"
        # A SET after the reset in the same message wins.
        c.execute("RESET ALL; SET application_name = 'later'")
        assert c.execute("SHOW application_name").fetchone() == ("later",)
        # Pipelined: several resets and queries in one round trip keep their order.
        c.execute("SELECT 1; RESET ALL")
        assert c.execute("SELECT current_setting('application_name')").fetchone() == ("keep-me",)


# ---- keys ----

def test_backend_key_data_is_minted():
    with connect("keys", autocommit=True) as c:
        real = c.execute("SELECT pg_backend_pid()").fetchone()[0]
        minted = c.info.backend_pid
        assert minted and minted != real, (minted, real)
        # the minted key still cancels: it is mapped to the real backend by the gateway
        timer = threading.Timer(0.5, c.cancel)
        timer.start()
        t0 = time.time()
        err = query_error(c, "SELECT pg_sleep(10)")
        timer.join()
        assert err and err[1] == "57014", err
        assert time.time() - t0 < 2.5, "the cancel took %.1fs" % (time.time() - t0)
        assert c.execute("SELECT 1").fetchone() == (1,)
    # the raw BackendKeyData: the pid is not the upstream's
    r = RawSession(S["gw"].port, S["ident"], S["token"], "keys", cafile=S["certs"].ca)
    assert r.ok, r.error
    rows, err = r.query("SELECT pg_backend_pid()")
    r.close()
    assert err is None and r.backend_key and r.backend_key[0] != int(rows[0][0]), (r.backend_key, rows)


def test_gateway_stops_cleanly():
    """Last: SIGTERM ends the gateway with exit 0 and no sanitizer report in its log."""
    assert S["gw"].stop() == 0


main(globals())
