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


# ---- pgmoat login against the provider (the CLI's side of the device flow) ----

def login_env(home):
    env = {k: v for k, v in os.environ.items() if k not in ("PGMOAT_TOKEN", "PGMOAT_ISSUER", "PGMOAT_CLIENT_ID")}
    env.update(XDG_CONFIG_HOME=os.path.join(home, "xdg"), HOME=home)
    return env


def start_login(home, *args, issuer=None):
    """pgmoat login in the background; returns (process, verification_uri_complete, user_code)."""
    p = subprocess.Popen([PGMOAT, "login", "--issuer", issuer or S["corp"].issuer, "--ca", S["certs"].ca,
                          "--scope", "openid email groups"] + list(args),
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


if __name__ == "__main__":
    main(globals())
