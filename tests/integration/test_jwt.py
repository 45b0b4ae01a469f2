#!/usr/bin/python3
"""Issue 8, the gateway side of identity providers: JWTs as passwords and bearer tokens.

Two issuers side by side: one whose keys are a jwks_file (identity_prefix "k8s:", identities must
exist), one served over HTTPS by a small Python server this test runs (keys found through
/.well-known/openid-configuration, auto_create with groups from a claim, prefix "idp:"). Tokens and
keys are made here with python3-cryptography (src/identity/jwt_forge.py). Checked: every allowed
algorithm logs in through psycopg and psql; a table of forged and malformed tokens is refused with
28P01, a one-line reason and nothing reaching PostgreSQL (its connection log); mismatched, unknown
and disabled identities get 28000; groups from the claim drive a policy decision; key rotation with
one refetch, the 30 s refetch limit, an empty or broken answer and an outage keep the keys that
work; a 3 s token ends its open session with 57P01 within 1 s of its exp; the HTTP API takes a JWT
as bearer; refusals are counted for the rate limit and recorded as auth_failure events.
"""
import http.server
import json
import os
import ssl
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "src", "identity"))
from harness import Certs, Gateway, Postgres, main, psql  # noqa: E402
from rawpg import RawSession, raw_login  # noqa: E402
import jwt_forge as jf  # noqa: E402

import psycopg  # noqa: E402

S = {}
AUD = "pgmoat"
FILE_ISS = "https://k8s.test"


class Idp:
    """An issuer over HTTPS: discovery document, a JWKS the test changes, a count of requests."""

    def __init__(self, certs):
        self.jwks = "{}"
        self.cache_control = "max-age=1"
        self.fetches = 0
        self.discoveries = 0
        idp = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                if self.path == "/.well-known/openid-configuration":
                    idp.discoveries += 1
                    body = json.dumps({"issuer": idp.issuer, "jwks_uri": idp.issuer + "/keys"}).encode()
                elif self.path == "/keys":
                    idp.fetches += 1
                    body = idp.jwks.encode()
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", idp.cache_control)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(certs.cert, certs.key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.issuer = "https://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def pg_log_size():
    return os.path.getsize(os.path.join(S["pg"].dir, "log"))


def gw_config_extra(idp, keysfile, limit):
    return """identity:
  oidc:
    - {issuer: %s, audience: %s, jwks_file: %s, identity_prefix: "k8s:", kind: agent}
    - {issuer: %s, audience: %s, ca: %s, identity_prefix: "idp:", kind: human, auto_create: true,
       groups_claim: groups}
limits: {auth_failures_per_minute: %d}
policies:
  - {name: analysts-read, who: [group:analysts], connections: [main], scope: read}
""" % (FILE_ISS, AUD, keysfile, idp.issuer, AUD, S["certs"].ca, limit)


def setup_module():
    pg = Postgres(conf_extra="log_connections = on\nlog_statement = 'all'\n").start().setup_roles()
    pg.sql("CREATE TABLE t(x int); INSERT INTO t VALUES (1), (2); GRANT SELECT ON t TO gw_scram", db="app")
    certs = Certs()
    S.update(pg=pg, certs=certs)
    S["fkeys"] = jf.Keys()            # the jwks_file issuer
    S["ikeys"] = jf.Keys(prefix="a-")  # the HTTPS issuer, first generation
    idp = Idp(certs)
    idp.jwks = json.dumps(S["ikeys"].jwks(("rsa", "p256")))
    S["idp"] = idp
    d = certs.dir
    keysfile = os.path.join(d, "k8s-jwks.json")
    with open(keysfile, "w") as f:
        json.dump(S["fkeys"].jwks(), f)
    S["keysfile"] = keysfile
    gw = Gateway(pg, tls=certs, plaintext_loopback=False, extra=gw_config_extra(idp, keysfile, 1000)).start()
    S["gw"] = gw
    gw.add_identity("k8s:agent-1", kind="agent", groups=["analysts"])
    gw.add_identity("k8s:agent-2", kind="agent", groups=["analysts"])


def ftoken(sub="agent-1", alg="RS256", ttl=600, **extra):
    return jf.make(S["fkeys"], jf.claims(FILE_ISS, AUD, sub, ttl=ttl, **extra), alg=alg)


def itoken(sub, groups=None, alg="RS256", keys=None, ttl=600, kid=None, **extra):
    if groups is not None:
        extra["groups"] = groups
    return jf.make(keys or S["ikeys"], jf.claims(S["idp"].issuer, AUD, sub, ttl=ttl, **extra), alg=alg, kid=kid)


def connect(user, token, **kw):
    return psycopg.connect(S["gw"].dsn(user, token, sslmode="verify-full", **kw), autocommit=True)


def login_error(user, token):
    st, fields = raw_login(S["gw"], user, token)
    assert st == "error", "login with %r succeeded" % user
    return fields


def test_every_alg_logs_in():
    for alg in jf.ALG_KEY:
        with connect("k8s:agent-1", ftoken(alg=alg)) as c:
            assert c.execute("SELECT count(*) FROM t").fetchone()[0] == 2, alg
    # psql with the JWT in PGPASSWORD, as pgmoat login --print-env sets it
    r = psql("host=127.0.0.1 port=%d dbname=main user=k8s:agent-1 sslmode=verify-full sslrootcert=%s"
             % (S["gw"].port, S["certs"].ca), "SELECT x FROM t ORDER BY x", args=["-At"],
             env={"PGPASSWORD": ftoken(alg="EdDSA")})
    assert r.returncode == 0 and r.stdout.split() == ["1", "2"], r.stderr


def test_forged_tokens_refused_nothing_reaches_postgres():
    table = jf.forged(S["fkeys"], FILE_ISS, AUD, "agent-1")
    assert len(table) >= 25
    time.sleep(0.3)
    before = pg_log_size()
    seen = set()
    for name, tok in table:
        f = login_error("k8s:agent-1", tok)
        assert f.get("C") == "28P01", (name, f)
        assert f.get("S") == "FATAL" and f["M"].startswith("pgmoat: ") and "\n" not in f["M"], (name, f)
        assert tok[:40] not in f["M"]
        seen.add(f["M"])
    # the reasons differ (expired, wrong audience, unknown key, bad signature, alg not allowed, ...)
    assert len(seen) >= 15, seen
    for want in ("expired", "wrong audience", "unknown key", "bad signature", "not allowed", "crit", "over 16384",
                 "RSA of 1024 bits", "does not fit key", "duplicate", "not base64url", "not signed", "issuer"):
        assert any(want in m for m in seen), (want, seen)
    # 1 MB through libpq: read to its end and refused, not a reset connection
    big = jf.make(S["fkeys"], dict(jf.claims(FILE_ISS, AUD, "agent-1"), pad="x" * (1024 * 1024)))
    try:
        connect("k8s:agent-1", big).close()
        raise AssertionError("a 1 MB token logged in")
    except psycopg.OperationalError as e:
        assert "FATAL:  pgmoat: the password is over 20000 bytes: a JWT is at most 16 kB" in str(e), e
    f = login_error("k8s:agent-1", big)
    assert f["C"] == "28P01", f
    time.sleep(0.5)
    assert pg_log_size() == before, "the forged logins reached PostgreSQL"


def test_identity_refusals_28000():
    f = login_error("k8s:agent-2", ftoken("agent-1"))
    assert f["C"] == "28000" and "does not match" in f["M"], f
    f = login_error("k8s:nobody", ftoken("nobody"))
    assert f["C"] == "28000" and "does not exist" in f["M"] and "auto_create" in f["M"], f
    gw = S["gw"]
    st, _ = gw.api("POST", "/v1/identities/k8s:agent-2/disable")
    assert st == 200
    try:
        f = login_error("k8s:agent-2", ftoken("agent-2"))
        assert f["C"] == "28000" and "disabled" in f["M"], f
    finally:
        assert gw.api("POST", "/v1/identities/k8s:agent-2/enable")[0] == 200
    with connect("k8s:agent-2", ftoken("agent-2")) as c:
        assert c.execute("SELECT 1").fetchone()[0] == 1


def test_auto_create_and_groups_drive_policy():
    gw = S["gw"]
    # first login creates idp:carol (kind human, groups from the claim): analysts may read
    with connect("idp:carol", itoken("carol", groups=["analysts", "bad,name"])) as c:
        assert c.execute("SELECT count(*) FROM t").fetchone()[0] == 2
    st, ids = gw.api("GET", "/v1/identities")
    carol = [i for i in ids if i["name"] == "idp:carol"][0]
    assert carol["kind"] == "human" and carol["groups"] == ["analysts"], carol
    # the next login's claim replaces the groups: without analysts no policy allows the statement
    with connect("idp:carol", itoken("carol", groups=[])) as c:
        try:
            c.execute("SELECT count(*) FROM t")
            raise AssertionError("allowed without the group")
        except psycopg.errors.InsufficientPrivilege as e:
            assert str(e).startswith("pgmoat: "), e
    st, ids = gw.api("GET", "/v1/identities")
    assert [i for i in ids if i["name"] == "idp:carol"][0]["groups"] == []


def test_two_issuers_side_by_side():
    # the same sub from both issuers names two identities; neither token opens the other's
    with connect("idp:agent-1", itoken("agent-1", groups=["analysts"])) as c:
        assert c.execute("SELECT current_user").fetchone()[0] == "gw_scram"
    with connect("k8s:agent-1", ftoken("agent-1")) as c:
        assert c.execute("SELECT 1").fetchone()[0] == 1
    f = login_error("k8s:agent-1", itoken("agent-1"))
    assert f["C"] == "28000" and "idp:agent-1" in f["M"], f
    # a token of one issuer signed with the other's keys
    forged = jf.make(S["fkeys"], jf.claims(S["idp"].issuer, AUD, "agent-1"), kid=S["ikeys"].kid("rsa"))
    f = login_error("idp:agent-1", forged)
    assert f["C"] == "28P01" and "bad signature" in f["M"], f


def test_http_bearer_jwt():
    gw = S["gw"]
    st, body = gw.api("GET", "/v1/requests", token=ftoken("agent-1"))
    assert st == 200, (st, body)
    st, body = gw.api("GET", "/v1/identities", token=ftoken("agent-1"))
    assert st == 403, (st, body)  # a valid JWT of a non-admin
    for name, tok in jf.forged(S["fkeys"], FILE_ISS, AUD, "agent-1")[:8]:
        st, body = gw.api("GET", "/v1/requests", token=tok)
        assert st == 401, (name, st, body)


def test_key_rotation_refetch_limit_and_outage():
    idp = S["idp"]
    old_tok = itoken("dave", groups=["analysts"])
    with connect("idp:dave", old_tok) as c:
        assert c.execute("SELECT 1").fetchone()[0] == 1
    # Cache-Control max-age=1 is held to at least 5 minutes: no fetch since
    base = idp.fetches
    time.sleep(1.5)
    with connect("idp:dave", old_tok):
        pass
    assert idp.fetches == base
    # rotation: the provider adds a new key; a token signed with it logs in after one refetch
    new = jf.Keys(prefix="b-")
    idp.jwks = json.dumps({"keys": S["ikeys"].jwks(("rsa", "p256"))["keys"] + new.jwks(("p256",))["keys"]})
    new_tok = itoken("dave", groups=["analysts"], keys=new, alg="ES256")
    t0 = time.time()
    with connect("idp:dave", new_tok) as c:
        assert c.execute("SELECT 1").fetchone()[0] == 1
    assert idp.fetches == base + 1 and time.time() - t0 < 3
    t_refetch = time.time()
    with connect("idp:dave", old_tok):
        pass  # the old key still works until its tokens expire
    # another unknown kid within 30 s: refused at once, no fetch (no storm from bad tokens)
    other = jf.Keys(prefix="c-")
    f = login_error("idp:dave", itoken("dave", keys=other, alg="ES256"))
    assert f["C"] == "28P01" and "unknown key" in f["M"], f
    assert idp.fetches == base + 1
    # an empty answer, then a broken one: never replace keys that work
    idp.jwks = '{"keys": []}'
    time.sleep(max(0, 30.5 - (time.time() - t_refetch)))
    f = login_error("idp:dave", itoken("dave", keys=other, alg="ES256"))
    assert f["C"] == "28P01" and "unknown key" in f["M"], f
    assert idp.fetches == base + 2
    with connect("idp:dave", new_tok):
        pass
    with connect("idp:dave", old_tok):
        pass
    # the provider goes away: cached keys keep working, unknown keys are refused
    idp.stop()
    with connect("idp:dave", itoken("dave", groups=["analysts"], keys=new, alg="ES256")) as c:
        assert c.execute("SELECT 1").fetchone()[0] == 1
    f = login_error("idp:dave", itoken("dave", keys=other, alg="ES256"))
    assert f["C"] == "28P01" and "unknown key" in f["M"], f


def test_token_expiry_ends_session():
    exp = int(time.time()) + 3
    tok = jf.make(S["fkeys"], {"iss": FILE_ISS, "aud": AUD, "sub": "agent-1", "exp": exp, "iat": exp - 3})
    r = RawSession(S["gw"].port, "k8s:agent-1", tok, cafile=S["certs"].ca)
    assert r.ok, r.error
    rows, err = r.query("SELECT pg_sleep(10)")
    ended = time.time()
    r.close()
    assert err and err["S"] == "FATAL" and err["C"] == "57P01" and "token (JWT)" in err["M"], err
    assert exp - 0.05 <= ended <= exp + 1.0, ended - exp
    # psycopg sees the same end
    exp = int(time.time()) + 2
    tok = jf.make(S["fkeys"], {"iss": FILE_ISS, "aud": AUD, "sub": "agent-1", "exp": exp})
    c = connect("k8s:agent-1", tok)
    try:
        c.execute("SELECT pg_sleep(10)")
        raise AssertionError("the session outlived its token")
    except psycopg.OperationalError as e:
        assert "pgmoat: the token (JWT) that opened this session expired" in str(e), e
    finally:
        c.close()


def test_rate_limit_counts_jwt_failures():
    gw = Gateway(S["pg"], tls=S["certs"], plaintext_loopback=False,
                 extra=gw_config_extra(S["idp"], S["keysfile"], 3)).start()
    try:
        gw.add_identity("k8s:agent-1", kind="agent", groups=["analysts"])
        bad = jf.make(S["fkeys"], jf.claims(FILE_ISS, "other", "agent-1"))
        for _ in range(3):
            st, f = raw_login(gw, "k8s:agent-1", bad)
            assert f["C"] == "28P01" and "wrong audience" in f["M"], f
        st, f = raw_login(gw, "k8s:agent-1", ftoken("agent-1"))
        assert st == "error" and "too many failed logins" in f["M"], f
    finally:
        gw.stop()


def test_auth_failures_recorded():
    gw = S["gw"]
    tok = ftoken("agent-1", alg="ES256")
    wrong = tok[:-30] + ("A" if tok[-30] != "A" else "B") + tok[-29:]
    login_error("k8s:agent-1", wrong)
    time.sleep(0.5)
    events, after = [], 0
    while True:
        st, body = gw.api("GET", "/v1/audit?limit=1000&after=%d" % after)
        assert st == 200, body
        events += body["events"]
        if not body["next"]:
            break
        after = body["next"]
    fails = [e for e in events if e.get("event") == "auth_failure"]
    assert len(fails) >= 30, len(fails)
    last = fails[-1]
    assert last["method"] == "jwt" and last["user"] == "k8s:agent-1" and last["client"] == "127.0.0.1", last
    assert last["sqlstate"] == "28P01" and "signature" in last["reason"] and last["issuer"] == FILE_ISS, last
    text = json.dumps(events)
    assert wrong.split(".")[2][:20] not in text and wrong.split(".")[1][:30] not in text
    r = gw.cli("audit", "verify")
    assert r.returncode == 0, r.stderr


def test_zz_stop_clean():
    assert S["gw"].stop() == 0


main(globals())
