#!/usr/bin/python3
"""Identity providers (issue 8) end to end, with a real OpenID provider.

Two issuers run side by side, each an oidc-provider (npm, OpenID-certified) on loopback over HTTPS with a
certificate from the test CA (tests/oidc/provider.mjs):

- "corp", a company IdP for people: a device-flow client for `pgmoat login`, accounts alice (group dba)
  and bob (group interns); the gateway maps its tokens by their email claim.
- "cluster", a workload IdP for agents: client-credentials clients; the gateway maps its tokens by sub,
  prefixed "k8s:".

Agents get their tokens with a plain HTTP POST (client-credentials grant) and connect with psql and
psycopg (libpq); people sign in with `pgmoat login`, the test approving the code on the provider's own
pages with plain HTTP requests, and use `pgmoat login --print-env` with psql and the kept token with the
admin verbs. Group claims decide policies. A third issuer rotates its signing key and is then stopped.
"""
import json
import os
import re
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import (PGMOAT, Certs, Gateway, OidcProvider, at_exit, jwt_claims, main, make_tempdir,  # noqa: E402
                     psql, shared_postgres)

import psycopg  # noqa: E402

S = {}
CC = "client_credentials"


def setup_module():
    certs = Certs()
    corp = OidcProvider(certs, alg="ES256", device_interval=1, clients=[
        dict(client_id="pgmoat-cli", grant="device_code"),
    ], accounts={
        "alice": dict(password="alice-pw", claims=dict(email="alice@example.com", groups=["dba"])),
        "bob": dict(password="bob-pw", claims=dict(email="bob@example.com", groups=["interns"])),
    }).start()
    cluster = OidcProvider(certs, alg="RS256", clients=[
        dict(client_id="agent-ci", client_secret="ci-secret", grant=CC, claims=dict(groups=["agents"])),
        dict(client_id="agent-intern", client_secret="intern-secret", grant=CC, claims=dict(groups=["interns"])),
    ]).start()
    S.update(certs=certs, corp=corp, cluster=cluster)
    pg = shared_postgres()
    pg.sql("CREATE TABLE IF NOT EXISTS public.notes(id int, body text); GRANT SELECT ON public.notes TO gw_scram; "
           "INSERT INTO public.notes VALUES (1, 'one'), (2, 'two')", db="app")
    gw = Gateway(pg, tls=certs, plaintext_loopback=False, extra=oidc_config(
        (corp, "kind: human, identity_claim: email, groups_claim: groups, client_id: pgmoat-cli"),
        (cluster, "kind: agent, identity_claim: sub, identity_prefix: \"k8s:\", groups_claim: groups")) + POLICIES)
    S["gw"] = gw.start()


POLICIES = """policies:
  - {name: dba-read, who: [group:dba], connections: [main], scope: read}
  - {name: agents-read, who: [group:agents], connections: [main], scope: read}
"""


def oidc_config(*issuers, extra=""):
    """identity.oidc with one entry per (provider, its keys) pair; every issuer trusts the test CA."""
    lines = ["identity:", "  tokens: true", "  oidc:"]
    for op, keys in issuers:
        lines.append("    - {issuer: \"%s\", audience: pgmoat, auto_create: true, ca: %s, %s}"
                     % (op.issuer, S["certs"].ca, keys))
    return "\n".join(lines) + "\n" + extra


# ---- pgmoat login against the provider (the CLI's side of the device flow) ----

def login_env(home):
    env = {k: v for k, v in os.environ.items() if k not in ("PGMOAT_TOKEN", "PGMOAT_ISSUER", "PGMOAT_CLIENT_ID")}
    env.update(XDG_CONFIG_HOME=os.path.join(home, "xdg"), HOME=home)
    return env


def start_login(home, *args, issuer=None, bare=False):
    """pgmoat login in the background (bare: with args alone); returns (process, verification_uri_complete,
    user_code, stderr lines so far)."""
    given = [] if bare else ["--issuer", issuer or S["corp"].issuer, "--ca", S["certs"].ca,
                             "--scope", "openid email groups"]
    p = subprocess.Popen([PGMOAT, "login"] + given + list(args),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=login_env(home))
    at_exit(lambda: p.poll() is None and (p.kill(), p.wait()))
    lines = []
    deadline = time.time() + 20
    while time.time() < deadline:
        line = p.stderr.readline()
        if not line:
            break
        lines.append(line)
        m = re.match(r"\(or open (\S+)\)$", line.strip())
        if m:
            code = re.search(r"enter the code: (\S+)", "".join(lines)).group(1)
            return p, m.group(1), code, lines
    p.kill()
    raise AssertionError("pgmoat login printed no URL: %r" % lines)


def finish_login(p, lines, timeout=60):
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out, "".join(lines) + err


def device_login(home, login, password, *args):
    p, url, code, lines = start_login(home, *args)
    S["corp"].approve_device(url, login, password)
    rc, out, err = finish_login(p, lines)
    assert rc == 0, (rc, err)
    return out, err


def test_login_device_flow_keeps_token_0600():
    home = make_tempdir("pgmoat-home-")
    out, err = device_login(home, "alice", "alice-pw", "--identity-claim", "email")
    d = os.path.join(home, "xdg", "pgmoat")
    tok_path = os.path.join(d, "token")
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700, oct(os.stat(d).st_mode)
    for p in (tok_path, tok_path + ".json"):
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o600, (p, oct(os.stat(p).st_mode))
    with open(tok_path) as f:
        token = f.read().strip()
    c = jwt_claims(token)
    assert c["iss"] == S["corp"].issuer and c["aud"] == "pgmoat", c
    assert c["email"] == "alice@example.com" and c["groups"] == ["dba"], c
    assert token not in err and token not in out, "the token was printed"
    assert "Signed in as alice@example.com" in err, err
    with open(tok_path + ".json") as f:
        meta = json.load(f)
    assert meta["identity"] == "alice@example.com" and meta["issuer"] == S["corp"].issuer, meta
    assert meta["expires_at"] == c["exp"], meta
    assert not [n for n in os.listdir(d) if n.endswith(".tmp")], os.listdir(d)
    S["alice_home"] = home


def test_login_print_env_uses_kept_token():
    home = S["alice_home"]
    with open(os.path.join(home, "xdg", "pgmoat", "token")) as f:
        token = f.read().strip()
    r = subprocess.run([PGMOAT, "login", "--print-env", "--host", "localhost", "--port", "6432", "--dbname", "main",
                        "--sslrootcert", S["certs"].ca], capture_output=True, text=True, env=login_env(home), timeout=30)
    assert r.returncode == 0, r.stderr
    env = parse_exports(r.stdout)
    assert env == dict(PGHOST="localhost", PGPORT="6432", PGDATABASE="main", PGUSER="alice@example.com",
                       PGPASSWORD=token, PGSSLMODE="verify-full", PGSSLROOTCERT=S["certs"].ca), env
    assert token not in r.stderr
    # the same lines through a shell's eval
    sh = subprocess.run(["sh", "-c", 'eval "$1"; printf "%s|%s|%s" "$PGUSER" "$PGSSLMODE" "${#PGPASSWORD}"', "sh",
                         r.stdout], capture_output=True, text=True)
    assert sh.stdout == "alice@example.com|verify-full|%d" % len(token), sh
    # a prefix and another claim, as a gateway's identity_prefix and identity_claim map it
    r = subprocess.run([PGMOAT, "login", "--print-env", "--identity-claim", "sub", "--identity-prefix", "corp:"],
                       capture_output=True, text=True, env=login_env(home), timeout=30)
    assert r.returncode == 0 and parse_exports(r.stdout)["PGUSER"] == "corp:alice", (r.stdout, r.stderr)


def parse_exports(text):
    env = {}
    for line in text.splitlines():
        m = re.match(r"export ([A-Z]+)='(.*)'$", line)
        assert m, "not an export line: %r" % line
        env[m.group(1)] = m.group(2).replace("'\\''", "'")
    return env


def test_login_denied_on_the_provider_page():
    home = make_tempdir("pgmoat-home-")
    p, url, code, lines = start_login(home)
    S["corp"].approve_device(url, "alice", "alice-pw", deny=True)
    rc, out, err = finish_login(p, lines)
    assert rc == 1 and "denied" in err, (rc, err)
    assert not os.path.exists(os.path.join(home, "xdg", "pgmoat", "token"))


def test_login_slow_down_adds_five_seconds():
    home = make_tempdir("pgmoat-home-")
    corp = S["corp"]
    before = len(corp.admin("GET", "/_admin/polls"))
    corp.admin("POST", "/_admin/slow_down")
    p, url, code, lines = start_login(home)
    time.sleep(2.5)  # the first poll (after 1 s) is answered slow_down; the next comes 6 s after it
    corp.approve_device(url, "bob", "bob-pw")
    rc, out, err = finish_login(p, lines)
    assert rc == 0, err
    polls = corp.admin("GET", "/_admin/polls")[before:]
    assert polls[0]["error"] == "slow_down", polls
    assert polls[1]["error"] is None, polls  # no poll between: the wait was 1 + 5 s
    gap = polls[1]["t"] - polls[0]["t"]
    assert 5.9 <= gap <= 8.5, (gap, polls)


def test_login_again_takes_the_last_settings():
    home = make_tempdir("pgmoat-home-")
    device_login(home, "bob", "bob-pw", "--identity-claim", "email", "--identity-prefix", "corp:")
    with open(os.path.join(home, "xdg", "pgmoat", "token.json")) as f:
        first = json.load(f)
    assert first["identity"] == "corp:bob@example.com" and first["ca"] == S["certs"].ca, first
    assert S["certs"].ca not in open(os.path.join(home, "xdg", "pgmoat", "token")).read()
    # no options: the issuer, CA, scope and identity mapping of the last sign-in
    p, url, code, lines = start_login(home, bare=True)
    assert S["corp"].issuer in "".join(lines), lines
    S["corp"].approve_device(url, "bob", "bob-pw")
    rc, out, err = finish_login(p, lines)
    assert rc == 0 and "Signed in as corp:bob@example.com" in err, (rc, err)
    with open(os.path.join(home, "xdg", "pgmoat", "token.json")) as f:
        second = json.load(f)
    assert second["expires_at"] >= first["expires_at"] and second["scope"] == "openid email groups", second
    with open(os.path.join(home, "xdg", "pgmoat", "token")) as f:
        assert jwt_claims(f.read().strip())["groups"] == ["interns"]


def test_login_code_expires():
    certs = S["certs"]
    op = OidcProvider(certs, device_interval=1, device_code_ttl=3,
                      clients=[dict(client_id="pgmoat-cli", grant="device_code")]).start()
    try:
        home = make_tempdir("pgmoat-home-")
        p, url, code, lines = start_login(home, issuer=op.issuer)
        rc, out, err = finish_login(p, lines, timeout=30)
        assert rc == 1 and "expired" in err, (rc, err)
        assert not os.path.exists(os.path.join(home, "xdg", "pgmoat", "token"))
    finally:
        op.stop()


def test_login_refuses_wrong_issuer_and_unverified_tls():
    home = make_tempdir("pgmoat-home-")
    corp = S["corp"]
    # discovery answers for https://127.0.0.1:PORT; asking for localhost names another issuer
    other = corp.issuer.replace("127.0.0.1", "localhost")
    r = subprocess.run([PGMOAT, "login", "--issuer", other, "--ca", S["certs"].ca], capture_output=True, text=True,
                       env=login_env(home), timeout=30)
    assert r.returncode == 1 and "names issuer" in r.stderr, r.stderr
    # without the test CA the provider's certificate does not verify
    r = subprocess.run([PGMOAT, "login", "--issuer", corp.issuer], capture_output=True, text=True,
                       env=login_env(home), timeout=30)
    assert r.returncode == 1 and "cannot read" in r.stderr, r.stderr
    r = subprocess.run([PGMOAT, "login", "--issuer", "http://" + corp.issuer[8:]], capture_output=True, text=True,
                       env=login_env(home), timeout=30)
    assert r.returncode == 2 and "https://" in r.stderr, r.stderr
    r = subprocess.run([PGMOAT, "login", "--help"], capture_output=True, text=True, env=login_env(home))
    assert r.returncode == 0 and "device flow" in r.stdout and "--print-env" in r.stdout
    assert not os.path.exists(os.path.join(home, "xdg", "pgmoat", "token"))


def test_client_credentials_token_is_a_jwt_for_the_gateway():
    tok = S["cluster"].client_credentials("agent-ci", "ci-secret")
    c = jwt_claims(tok)
    assert c["sub"] == "agent-ci" and c["aud"] == "pgmoat" and c["iss"] == S["cluster"].issuer, c
    assert c["groups"] == ["agents"], c


# ---- through the gateway: psql, psycopg, the admin verbs ----

def gw_dsn(user, token, gw=None, **kw):
    gw = gw or S["gw"]
    return gw.dsn(user, token, dbname="main", sslmode="verify-full", **kw)


def select_notes(user, token, gw=None):
    return psql(gw_dsn(user, token, gw), "SELECT string_agg(body, ',' ORDER BY id) FROM public.notes",
                args=["-qAt", "-v", "ON_ERROR_STOP=1"])


def test_agent_client_credentials_psql_and_psycopg():
    tok = S["cluster"].client_credentials("agent-ci", "ci-secret")
    r = select_notes("k8s:agent-ci", tok)
    assert r.returncode == 0 and r.stdout.strip() == "one,two", r.stderr
    with psycopg.connect(gw_dsn("k8s:agent-ci", tok)) as conn:
        assert conn.execute("SELECT count(*) FROM public.notes").fetchone()[0] == 2
        assert conn.pgconn.ssl_in_use
    st, ids = S["gw"].api("GET", "/v1/identities")
    me = [i for i in ids if i["name"] == "k8s:agent-ci"]
    assert st == 200 and me and me[0]["kind"] == "agent" and me[0]["groups"] == ["agents"], ids


def test_group_claims_decide_policies():
    tok = S["cluster"].client_credentials("agent-intern", "intern-secret")
    r = select_notes("k8s:agent-intern", tok)
    assert r.returncode != 0 and "pgmoat: " in r.stderr and "dba-read" not in r.stdout, r.stderr
    with psycopg.connect(gw_dsn("k8s:agent-intern", tok)) as conn:
        try:
            conn.execute("SELECT count(*) FROM public.notes")
            raise AssertionError("a group no policy names was allowed")
        except psycopg.errors.InsufficientPrivilege as e:
            assert str(e).startswith("pgmoat: "), e


def test_person_print_env_with_psql_and_admin_verb():
    home = S["alice_home"]
    gw = S["gw"]
    r = subprocess.run([PGMOAT, "login", "--print-env", "--host", "localhost", "--port", str(gw.port), "--dbname",
                        "main", "--sslrootcert", S["certs"].ca], capture_output=True, text=True, env=login_env(home),
                       timeout=30)
    assert r.returncode == 0, r.stderr
    env = dict(os.environ, PGCONNECT_TIMEOUT="10", **parse_exports(r.stdout))
    q = subprocess.run(["psql", "-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-c",
                        "SELECT string_agg(body, ',' ORDER BY id) FROM public.notes"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert q.returncode == 0 and q.stdout.strip() == "one,two", q.stderr
    # the admin verbs take the kept token when PGMOAT_TOKEN and --token-file are absent (alice is in group dba)
    cli_env = dict(login_env(home), PGMOAT_GATEWAY=gw.url)
    r = subprocess.run([PGMOAT, "identity", "list"], capture_output=True, text=True, env=cli_env, timeout=30)
    assert r.returncode == 0 and "alice@example.com" in r.stdout and "human" in r.stdout, r.stderr
    # bob signs in too; his group has no policy and he is no admin
    bob = make_tempdir("pgmoat-home-")
    device_login(bob, "bob", "bob-pw", "--identity-claim", "email")
    r = subprocess.run([PGMOAT, "login", "--print-env", "--host", "localhost", "--port", str(gw.port), "--dbname",
                        "main", "--sslrootcert", S["certs"].ca], capture_output=True, text=True, env=login_env(bob),
                       timeout=30)
    env = dict(os.environ, PGCONNECT_TIMEOUT="10", **parse_exports(r.stdout))
    q = subprocess.run(["psql", "-X", "-qAt", "-c", "SELECT count(*) FROM public.notes"], capture_output=True,
                       text=True, env=env, timeout=60)
    assert q.returncode != 0 and "pgmoat: " in q.stderr and q.stdout == "", q
    r = subprocess.run([PGMOAT, "identity", "list"], capture_output=True, text=True,
                       env=dict(login_env(bob), PGMOAT_GATEWAY=gw.url), timeout=30)
    assert r.returncode == 1, (r.stdout, r.stderr)


def test_admin_verb_does_not_send_an_expired_kept_token():
    home = make_tempdir("pgmoat-home-")
    d = os.path.join(home, "xdg", "pgmoat")
    os.makedirs(d, mode=0o700)
    with open(os.path.join(d, "token"), "w") as f:
        f.write(S["gw"].admin_token + "\n")  # would be let in, were it sent
    with open(os.path.join(d, "token.json"), "w") as f:
        json.dump(dict(issuer=S["corp"].issuer, identity="alice@example.com", expires_at=int(time.time()) - 10), f)
    r = subprocess.run([PGMOAT, "identity", "list"], capture_output=True, text=True,
                       env=dict(login_env(home), PGMOAT_GATEWAY=S["gw"].url), timeout=30)
    assert r.returncode == 1 and "expired" in r.stderr and "pgmoat login" in r.stderr, r.stderr
    assert "NAME" not in r.stdout, r.stdout
    # PGMOAT_TOKEN still comes first
    r = subprocess.run([PGMOAT, "identity", "list"], capture_output=True, text=True, timeout=30,
                       env=dict(login_env(home), PGMOAT_GATEWAY=S["gw"].url, PGMOAT_TOKEN=S["gw"].admin_token))
    assert r.returncode == 0 and "expired" not in r.stderr, r.stderr


def test_two_issuers_side_by_side():
    corp_home = S["alice_home"]
    with open(os.path.join(corp_home, "xdg", "pgmoat", "token")) as f:
        alice_tok = f.read().strip()
    agent_tok = S["cluster"].client_credentials("agent-ci", "ci-secret")
    # each token names its own identity: neither passes for the other issuer's
    for user, tok in (("alice@example.com", agent_tok), ("k8s:alice", alice_tok), ("alice", alice_tok),
                      ("agent-ci", agent_tok)):
        r = select_notes(user, tok)
        assert r.returncode != 0 and "pgmoat: " in r.stderr, (user, r.stderr)
    assert select_notes("alice@example.com", alice_tok).returncode == 0
    assert select_notes("k8s:agent-ci", agent_tok).returncode == 0


def refusal(user, token, gw):
    """Log in with psycopg and run a SELECT: None when that works, else the gateway's refusal (libpq
    reports a failed login by its message alone, without the SQLSTATE)."""
    try:
        with psycopg.connect(gw_dsn(user, token, gw), connect_timeout=10) as conn:
            conn.execute("SELECT 1").fetchone()
        return None
    except psycopg.Error as e:
        return str(e)


def test_key_rotation_and_provider_outage():
    certs = S["certs"]
    op = OidcProvider(certs, alg="ES256", clients=[
        dict(client_id="rot-long", client_secret="long-secret", grant=CC, claims=dict(groups=["agents"])),
        dict(client_id="rot-short", client_secret="short-secret", grant=CC, claims=dict(groups=["agents"]),
             access_token_ttl=20),
    ]).start()
    gw = Gateway(shared_postgres(), tls=certs, plaintext_loopback=False, extra=oidc_config(
        (op, "kind: agent, identity_claim: sub, groups_claim: groups, leeway: 1s")) + POLICIES).start()
    old_long = op.client_credentials("rot-long", "long-secret")
    old_short = op.client_credentials("rot-short", "short-secret")
    assert refusal("rot-long", old_long, gw) is None
    assert refusal("rot-short", old_short, gw) is None
    fetched = op.jwks_fetches()
    keys = op.rotate()
    assert len(keys["published"]) == 2, keys
    new_long = op.client_credentials("rot-long", "long-secret")
    assert jwt_claims(new_long) and new_long.split(".")[0] != old_long.split(".")[0]
    # the new key is unknown to the gateway until it refetches the JWKS (at most once per 30 s)
    deadline = time.time() + 40
    while refusal("rot-long", new_long, gw) is not None:
        assert time.time() < deadline, "a token of the new key was refused for 40 s"
        time.sleep(1)
    assert op.jwks_fetches() - fetched == 1, (fetched, op.jwks_fetches())
    # tokens of the old key (still published) keep working until they expire
    assert refusal("rot-long", old_long, gw) is None
    left = jwt_claims(old_short)["exp"] - time.time()
    if left > 2:
        assert refusal("rot-short", old_short, gw) is None
        time.sleep(left + 2.5)  # leeway 1 s
    why = refusal("rot-short", old_short, gw)
    assert why and "pgmoat: " in why and "expired" in why, why
    # the provider goes down: cached keys keep working, a key the gateway never saw is refused
    op.rotate()
    unseen = op.client_credentials("rot-long", "long-secret")
    op.stop()
    assert refusal("rot-long", new_long, gw) is None
    why = refusal("rot-long", unseen, gw)
    assert why and "pgmoat: " in why and "unknown key" in why, why
    assert refusal("rot-long", new_long, gw) is None
    gw.stop()


if __name__ == "__main__":
    main(globals())
