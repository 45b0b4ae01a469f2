#!/usr/bin/python3
"""The HTTP API and the admin CLI verbs (issue 2): /healthz and /metrics, bearer auth (401, 403,
admins by group), `identity add|list|disable`, `token issue|list|revoke`, `sessions`, `kill`
(FATAL 57P01 within a second), exit codes 0/1/2, `--help` everywhere, and `pgmoat check`."""
import calendar
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import PGMOAT, Certs, Gateway, main, make_tempdir, shared_postgres  # noqa: E402
from rawpg import RawSession, query_error, raw_login, verbose_errors  # noqa: E402

import psycopg  # noqa: E402

S = {}
TOKEN_RE = re.compile(r"^pgm_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$")


def setup_module():
    pg = shared_postgres()
    certs = Certs()
    gw = Gateway(pg, tls=certs, plaintext_loopback=False).start()
    S.update(pg=pg, certs=certs, gw=gw)


def http(path, method="GET", headers=None):
    req = urllib.request.Request(S["gw"].url + path, method=method)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def cli(*args, token=None, env=None, timeout=60):
    """Run build/pgmoat with the gateway's URL and a token (the admin token by default)."""
    e = dict(os.environ, PGMOAT_GATEWAY=S["gw"].url, PGMOAT_TOKEN=S["gw"].admin_token if token is None else token)
    e.update(env or {})
    return subprocess.run([PGMOAT] + list(args), capture_output=True, text=True, env=e, timeout=timeout)


def ok(*args, **kw):
    r = cli(*args, **kw)
    assert r.returncode == 0, "pgmoat %s exited %d: %s" % (" ".join(args), r.returncode, r.stderr)
    return r


def connect(user, token, **kw):
    return verbose_errors(psycopg.connect(S["gw"].dsn(user, token), connect_timeout=10, **kw))


def new_identity(name, *extra):
    ok("identity", "add", name, *extra)
    r = ok("token", "issue", name)
    return r.stdout.strip()


def session_ids(identity):
    st, sessions = S["gw"].api("GET", "/v1/sessions")
    assert st == 200, (st, sessions)
    return [s["id"] for s in sessions if s["identity"] == identity]


def wait_for(pred, timeout=5.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


def assert_ended_57P01(conn, within=1.0):
    """The session was ended by the gateway: the next statement fails with FATAL 57P01 'pgmoat: '
    (the FATAL is already waiting on the socket), and the connection is closed."""
    t0 = time.time()
    err = query_error(conn, "SELECT 1")
    assert err is not None, "the session still runs statements"
    assert err[:2] == ("FATAL", "57P01") and err[2].startswith("pgmoat: "), err
    assert time.time() - t0 < within, "noticing took %.2fs" % (time.time() - t0)
    assert conn.closed or conn.broken, "the connection is still open"
    conn.close()


# ---- HTTP ----

def test_healthz_without_auth():
    st, ctype, body = http("/healthz")
    assert st == 200 and "json" in ctype, (st, ctype, body)
    assert json.loads(body)["status"] == "ok"


def test_metrics_prometheus_text():
    st, ctype, body = http("/metrics")
    assert st == 200 and ctype.startswith("text/plain"), (st, ctype)
    assert re.search(r"^pgmoat_sessions \d+$", body, re.M), body
    assert re.search(r'^pgmoat_pool_connections\{connection="main",state="total"\} \d+$', body, re.M), body
    for line in body.splitlines():
        assert line.startswith("#") or re.match(r"^[a-z_]+(\{[^}]*\})? -?\d+(\.\d+)?$", line), line


def test_api_401_without_or_with_bad_bearer():
    for path in ("/v1/identities", "/v1/tokens", "/v1/sessions"):
        st, _, body = http(path)
        assert st == 401 and "error" in json.loads(body), (path, st, body)
        st, _, body = http(path, headers={"Authorization": "Bearer pgm_000000000000_" + "A" * 43})
        assert st == 401, (path, st, body)
        st, _, body = http(path, headers={"Authorization": "Bearer " + S["gw"].admin_token + "x"})
        assert st == 401, (path, st, body)
        st, _, body = http(path, headers={"Authorization": "Basic " + S["gw"].admin_token})
        assert st == 401, (path, st, body)
    # writes too
    st, body = S["gw"].api("POST", "/v1/identities", {"name": "sneaky"}, token="bad-token")
    assert st == 401, (st, body)
    st, idents = S["gw"].api("GET", "/v1/identities")
    assert st == 200 and not any(i["name"] == "sneaky" for i in idents)


def test_api_403_for_non_admin_identity():
    gw = S["gw"]
    name, tok = gw.agent("plain-agent", groups=["agents"])
    for method, path, body in (("GET", "/v1/identities", None), ("GET", "/v1/tokens", None),
                               ("GET", "/v1/sessions", None), ("POST", "/v1/identities", {"name": "x1"}),
                               ("POST", "/v1/tokens", {"identity": "plain-agent"}),
                               ("DELETE", "/v1/sessions/00000000-0000-4000-8000-000000000000", None)):
        st, out = gw.api(method, path, body, token=tok)
        assert st == 403, (method, path, st, out)
    r = cli("identity", "list", token=tok)
    assert r.returncode == 1 and "not an admin" in r.stderr, (r.returncode, r.stderr)


def test_api_200_for_group_dba():
    gw = S["gw"]
    name, tok = gw.agent("dba-person", groups=["dba"])
    st, idents = gw.api("GET", "/v1/identities", token=tok)
    assert st == 200 and any(i["name"] == "dba-person" for i in idents), (st, idents)
    st, out = gw.api("POST", "/v1/identities", {"name": "made-by-dba", "kind": "human"}, token=tok)
    assert st == 201, (st, out)
    r = ok("identity", "list", token=tok)
    assert "made-by-dba" in r.stdout


# ---- identity ----

def test_identity_add_and_list():
    r = ok("identity", "add", "alice", "--kind", "human", "--group", "analysts", "--group", "oncall")
    assert "alice" in r.stdout
    r = ok("identity", "list")
    row = [l for l in r.stdout.splitlines() if l.split()[:1] == ["alice"]]
    assert len(row) == 1, r.stdout
    assert "human" in row[0] and "analysts,oncall" in row[0], row
    r = ok("identity", "list", "--json")
    data = json.loads(r.stdout)
    alice = [i for i in data if i["name"] == "alice"]
    assert alice and alice[0]["kind"] == "human" and alice[0]["groups"] == ["analysts", "oncall"], alice
    assert alice[0]["disabled"] is False
    # kind defaults to agent
    ok("identity", "add", "bot-7")
    data = json.loads(ok("identity", "list", "--json").stdout)
    assert [i["kind"] for i in data if i["name"] == "bot-7"] == ["agent"]
    # refused: a duplicate, a bad kind, a bad name → exit 1 with a message
    for args in (("identity", "add", "alice"), ("identity", "add", "carol", "--kind", "robot"),
                 ("identity", "add", "bad name!")):
        r = cli(*args)
        assert r.returncode == 1 and r.stderr.startswith("pgmoat: "), (args, r.returncode, r.stderr)


def test_identity_disable_ends_session_and_refuses_logins():
    tok = new_identity("to-disable", "--kind", "agent")
    c = connect("to-disable", tok, autocommit=True)
    assert c.execute("SELECT 1").fetchone() == (1,)
    wait_for(lambda: session_ids("to-disable"), what="the session to be listed")
    r = ok("identity", "disable", "to-disable")
    assert "disabled" in r.stdout
    assert_ended_57P01(c)
    assert session_ids("to-disable") == []
    kind, f = raw_login(S["gw"], "to-disable", tok)
    assert kind == "error" and f["S"] == "FATAL" and f["C"] == "28000" and f["M"].startswith("pgmoat: "), f
    data = json.loads(ok("identity", "list", "--json").stdout)
    assert [i["disabled"] for i in data if i["name"] == "to-disable"] == [True]
    # unknown identity: refused
    r = cli("identity", "disable", "no-such-identity")
    assert r.returncode == 1 and "does not exist" in r.stderr, (r.returncode, r.stderr)


# ---- token ----

def test_token_issue_prints_only_the_token():
    ok("identity", "add", "tok-owner")
    r = ok("token", "issue", "tok-owner", "--ttl", "1h")
    lines = r.stdout.splitlines()
    assert len(lines) == 1 and TOKEN_RE.match(lines[0]), repr(r.stdout)
    tok = lines[0]
    assert tok not in r.stderr
    with connect("tok-owner", tok) as c:
        assert c.execute("SELECT 1").fetchone() == (1,)
    # --ttl 1h: expires about an hour from now
    data = json.loads(ok("token", "list", "--json").stdout)
    mine = [t for t in data if t["id"] == tok[4:16]]
    assert mine and mine[0]["identity"] == "tok-owner" and mine[0]["expires_at"], mine
    exp = time.mktime(time.strptime(mine[0]["expires_at"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert 3500 < exp - time.time() < 3700, mine[0]["expires_at"]
    # refused: unknown identity (1), bad ttl (1)
    r = cli("token", "issue", "nobody-here")
    assert r.returncode == 1 and r.stdout == "" and "does not exist" in r.stderr, (r.returncode, r.stdout, r.stderr)
    r = cli("token", "issue", "tok-owner", "--ttl", "soon")
    assert r.returncode == 1 and r.stdout == "", (r.returncode, r.stdout, r.stderr)


def test_token_list_shows_no_secrets():
    ok("identity", "add", "secretive")
    tok = ok("token", "issue", "secretive").stdout.strip()
    secret = tok[17:]
    for args in (("token", "list"), ("token", "list", "--json")):
        r = ok(*args)
        out = r.stdout + r.stderr
        assert tok[4:16] in out, out            # the id is listed
        assert tok not in out and secret not in out, "token list shows a secret"
    st, body = S["gw"].api("GET", "/v1/tokens")
    assert st == 200 and secret not in json.dumps(body)
    st, body = S["gw"].api("GET", "/v1/identities")
    assert st == 200 and secret not in json.dumps(body)
    assert secret not in S["gw"].read_log(), "the gateway logged a token secret"


def test_token_revoke_ends_its_sessions():
    ok("identity", "add", "revokee")
    tok1 = ok("token", "issue", "revokee").stdout.strip()
    tok2 = ok("token", "issue", "revokee").stdout.strip()
    c1 = connect("revokee", tok1, autocommit=True)
    c2 = connect("revokee", tok2, autocommit=True)
    assert c1.execute("SELECT 1").fetchone() == (1,) and c2.execute("SELECT 2").fetchone() == (2,)
    wait_for(lambda: len(session_ids("revokee")) == 2, what="both sessions to be listed")
    r = ok("token", "revoke", tok1[4:16])
    assert "revoked" in r.stdout and "1 live session" in r.stdout, r.stdout
    assert_ended_57P01(c1)
    # the session with the other token lives on
    assert c2.execute("SELECT 3").fetchone() == (3,)
    c2.close()
    kind, f = raw_login(S["gw"], "revokee", tok1)
    assert kind == "error" and f["C"] == "28P01", f
    data = json.loads(ok("token", "list", "--json").stdout)
    t = [x for x in data if x["id"] == tok1[4:16]][0]
    assert t["active"] is False and t["revoked_at"], t
    # unknown / already revoked id: refused
    for bad in ("000000000000", tok1[4:16]):
        r = cli("token", "revoke", bad)
        assert r.returncode == 1 and r.stderr.startswith("pgmoat: "), (bad, r.returncode, r.stderr)


def test_token_ttl_ends_its_sessions():
    """A token issued with a ttl ends the sessions it opened when it expires (57P01), as a JWT's exp does."""
    ok("identity", "add", "short-lived")
    tok = ok("token", "issue", "short-lived", "--ttl", "3s").stdout.strip()
    data = json.loads(ok("token", "list", "--json").stdout)
    exp = [x for x in data if x["id"] == tok[4:16]][0]["expires_at"]
    c = connect("short-lived", tok, autocommit=True)
    assert c.execute("SELECT 1").fetchone() == (1,)
    try:
        c.execute("SELECT pg_sleep(10)")
        raise AssertionError("the session outlived its token")
    except psycopg.OperationalError as e:
        assert "pgmoat: the API token that opened this session expired" in str(e), e
        assert "57P01" in str(e), e
    ended = time.time()
    c.close()
    exp_s = calendar.timegm(time.strptime(exp[:19], "%Y-%m-%dT%H:%M:%S"))
    assert exp_s - 0.05 <= ended <= exp_s + 1.5, (ended, exp)
    kind, f = raw_login(S["gw"], "short-lived", tok)
    assert kind == "error" and f["C"] == "28P01" and "expired" in f["M"], f


# ---- sessions and kill ----

def test_sessions_lists_live_session():
    tok = new_identity("lister")
    c = connect("lister", tok, application_name="list-me")
    c.execute("SELECT 1")
    ids = wait_for(lambda: session_ids("lister"), what="the session")
    r = ok("sessions")
    rows = [l for l in r.stdout.splitlines() if ids[0] in l]
    assert len(rows) == 1, r.stdout
    assert "lister" in rows[0] and " main " in rows[0] and "127.0.0.1" in rows[0] and "TLS" in rows[0], rows[0]
    assert "IDENTITY" in r.stdout.splitlines()[0]
    data = json.loads(ok("sessions", "--json").stdout)
    s = [x for x in data if x["id"] == ids[0]][0]
    assert s["identity"] == "lister" and s["connection"] == "main" and s["client_addr"] == "127.0.0.1", s
    assert s["application_name"] == "list-me" and s["tls"].startswith("TLS") and s["started_at"], s
    assert s["statements"] >= 1, s
    r = ok("sessions", "--active")
    assert ids[0] in r.stdout
    c.close()
    wait_for(lambda: not session_ids("lister"), what="the closed session to leave the list")
    assert ids[0] not in ok("sessions").stdout


def test_kill_idle_session_57P01():
    tok = new_identity("killme-idle")
    c = connect("killme-idle", tok, autocommit=True)
    c.execute("SELECT 1")
    sid = wait_for(lambda: session_ids("killme-idle"), what="the session")[0]
    r = ok("kill", sid)
    assert sid in r.stdout
    # the FATAL is sent at once: read it on the wire with no statement pending
    assert_ended_57P01(c)
    assert session_ids("killme-idle") == []
    # the identity itself is not affected
    with connect("killme-idle", tok) as c2:
        assert c2.execute("SELECT 1").fetchone() == (1,)


def test_kill_is_delivered_within_one_second():
    """A raw client waits without sending anything: the FATAL must arrive on its own, within 1 s."""
    tok = new_identity("killme-raw")
    r = RawSession(S["gw"].port, "killme-raw", tok, cafile=S["certs"].ca)
    assert r.ok, r.error
    rows, err = r.query("SELECT 1")
    assert err is None and rows == [["1"]]
    sid = wait_for(lambda: session_ids("killme-raw"), what="the session")[0]
    t0 = time.time()
    ok("kill", sid)
    r.sock.settimeout(1.5)
    t, f = r.read_async()
    elapsed = time.time() - t0
    assert t == b"E" and f["S"] == "FATAL" and f["C"] == "57P01" and f["M"].startswith("pgmoat: "), (t, f)
    assert elapsed < 1.0, "the FATAL arrived after %.2fs" % elapsed
    r.close()


def test_kill_busy_session_57P01():
    """A session in the middle of a long statement is ended within a second; its upstream query stops."""
    tok = new_identity("killme-busy")
    c = connect("killme-busy", tok, autocommit=True)
    out = {}

    def run():
        out["err"] = query_error(c, "SELECT pg_sleep(20)")
        out["t"] = time.time()

    th = threading.Thread(target=run, daemon=True)
    th.start()
    sid = wait_for(lambda: session_ids("killme-busy"), what="the session")[0]
    pg = S["pg"]
    wait_for(lambda: pg.sql("SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(20)' "
                            "AND state = 'active'") == "1", what="the statement to run upstream")
    t0 = time.time()
    ok("kill", sid)
    th.join(5)
    assert "err" in out, "the client was not told within 5 s"
    assert out["t"] - t0 < 1.0, "the client was told after %.2fs" % (out["t"] - t0)
    assert out["err"][:2] == ("FATAL", "57P01") and out["err"][2].startswith("pgmoat: "), out["err"]
    c.close()
    # the upstream statement is cancelled too, not left running for 20 s
    wait_for(lambda: pg.sql("SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(20)' "
                            "AND state = 'active'") == "0", timeout=5, what="the upstream statement to stop")


def test_kill_unknown_session_refused():
    r = cli("kill", "00000000-0000-4000-8000-000000000000")
    assert r.returncode == 1 and r.stderr.startswith("pgmoat: "), (r.returncode, r.stderr)


# ---- exit codes and help ----

def test_exit_codes():
    # 1: refused or failed
    for args in (("token", "issue", "no-such-identity"), ("identity", "disable", "no-such-identity"),
                 ("token", "revoke", "ffffffffffff"), ("kill", "not-a-session")):
        r = cli(*args)
        assert r.returncode == 1, (args, r.returncode, r.stderr)
        assert r.stderr.strip(), args
    r = cli("identity", "list", token="wrong-token")
    assert r.returncode == 1 and "bearer" in r.stderr, (r.returncode, r.stderr)
    r = cli("identity", "list", env={"PGMOAT_GATEWAY": "http://127.0.0.1:1"})
    assert r.returncode == 1 and "cannot reach" in r.stderr, (r.returncode, r.stderr)
    # 2: usage
    for args in ((), ("no-such-command",), ("identity",), ("identity", "frobnicate"), ("identity", "add"),
                 ("identity", "add", "x", "--colour", "red"), ("token",), ("token", "issue"),
                 ("token", "issue", "x", "--ttl"), ("token", "revoke"), ("kill",), ("kill", "a", "b"),
                 ("sessions", "--bogus"), ("check",), ("check", "-c"), ("serve",), ("serve", "--bogus")):
        r = cli(*args)
        assert r.returncode == 2, (args, r.returncode, r.stdout, r.stderr)
        assert "usage" in (r.stdout + r.stderr).lower(), (args, r.stderr)


def test_help_on_every_command():
    cmds = [(), ("serve",), ("check",), ("demo",), ("identity",), ("identity", "add"), ("identity", "list"),
            ("identity", "disable"), ("identity", "enable"), ("token",), ("token", "issue"), ("token", "list"),
            ("token", "revoke"), ("sessions",), ("kill",)]
    before = ok("identity", "list", "--json").stdout
    for c in cmds:
        for flag in ("--help", "-h") if c else ("--help",):
            r = cli(*(c + (flag,)), timeout=20)
            assert r.returncode == 0, ("pgmoat %s %s" % (" ".join(c), flag), r.returncode, r.stdout, r.stderr)
            assert "usage" in (r.stdout + r.stderr).lower(), (c, r.stdout, r.stderr)
    # --help changed nothing (no identity named --help, nothing disabled)
    assert ok("identity", "list", "--json").stdout == before


# ---- pgmoat check ----

GOOD = """\
listen:
  postgres: "127.0.0.1:6432"
  http: "127.0.0.1:8080"
tls:
  cert: file:{cert}
  key: file:{key}
  allow_plaintext_loopback: false
state: "sqlite:{dir}/state.db"
admin_token: env:CHECK_ADMIN_TOKEN
admins: [group:dba]
limits:
  auth_timeout: 15s
  auth_failures_per_minute: 10
connections:
  - name: billing
    host: 127.0.0.1
    port: 5432
    database: app
    user: gw_scram
    password: env:CHECK_DB_PW
    sslmode: disable
    pool: {{size: 5}}
"""


def check(text, name="pgmoat.yaml"):
    d = S.setdefault("checkdir", make_tempdir("pgmoat-check-"))
    path = os.path.join(d, name)
    with open(path, "w") as f:
        f.write(text.format(cert=S["certs"].cert, key=S["certs"].key, dir=d))
    env = dict(os.environ, CHECK_ADMIN_TOKEN="adm-check", CHECK_DB_PW="pw")
    r = subprocess.run([PGMOAT, "check", "-c", path], capture_output=True, text=True, env=env, timeout=30)
    return path, r


def line_of(text, needle):
    for i, l in enumerate(text.splitlines(), 1):
        if needle in l:
            return i
    raise AssertionError(needle)


def test_check_valid_config():
    path, r = check(GOOD)
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert "ok" in r.stdout
    # and the gateway's own generated config
    env = dict(S["gw"].env)
    r = subprocess.run([PGMOAT, "check", "-c", S["gw"].config], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr


def test_check_unknown_key():
    bad = GOOD.replace("    sslmode: disable\n", "    sslmode: disable\n    colour: blue\n")
    path, r = check(bad, "unknown.yaml")
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "%s:%d:" % (path, line_of(bad, "colour: blue")) in r.stderr, r.stderr
    assert "colour" in r.stderr
    # at the top level too
    bad = GOOD + "frobnicate: yes\n"
    path, r = check(bad, "unknown-top.yaml")
    assert r.returncode == 1 and "%s:%d:" % (path, line_of(bad, "frobnicate")) in r.stderr, r.stderr


def test_check_bad_duration():
    bad = GOOD.replace("auth_timeout: 15s", "auth_timeout: 15 parsecs")
    path, r = check(bad, "duration.yaml")
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "%s:%d:" % (path, line_of(bad, "auth_timeout")) in r.stderr, r.stderr
    assert "auth_timeout" in r.stderr


def test_check_inline_secret_not_echoed():
    secret = "hunter2-inline-Secret-value"
    bad = GOOD.replace("password: env:CHECK_DB_PW", "password: " + secret)
    path, r = check(bad, "secret.yaml")
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "%s:%d:" % (path, line_of(bad, "password:")) in r.stderr, r.stderr
    assert "password" in r.stderr and ("env:" in r.stderr or "file:" in r.stderr), r.stderr
    assert secret not in r.stdout + r.stderr, "the inline secret was echoed"
    # the admin token too
    bad = GOOD.replace("admin_token: env:CHECK_ADMIN_TOKEN", "admin_token: " + secret)
    path, r = check(bad, "secret2.yaml")
    assert r.returncode == 1 and "%s:%d:" % (path, line_of(bad, "admin_token")) in r.stderr, r.stderr
    assert secret not in r.stdout + r.stderr


def test_check_reports_every_error_with_its_line():
    bad = GOOD.replace("auth_timeout: 15s", "auth_timeout: forever").replace(
        "    sslmode: disable\n", "    sslmode: disable\n    colour: blue\n")
    path, r = check(bad, "several.yaml")
    assert r.returncode == 1
    for needle in ("auth_timeout", "colour"):
        assert "%s:%d:" % (path, line_of(bad, needle)) in r.stderr, (needle, r.stderr)
    path, r = check("", "empty.yaml")
    assert r.returncode == 1 and r.stderr.strip(), r.stderr
    r = subprocess.run([PGMOAT, "check", "-c", "/nonexistent/pgmoat.yaml"], capture_output=True, text=True)
    assert r.returncode == 1 and "/nonexistent/pgmoat.yaml" in r.stderr, r.stderr


def test_gateway_stops_cleanly():
    """Last: SIGTERM ends the gateway with exit 0 and no sanitizer report in its log."""
    assert S["gw"].stop() == 0


main(globals())
