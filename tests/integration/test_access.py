#!/usr/bin/python3
"""Just-in-time access through the real HTTP API and CLI (issue 3, "Just in time" and "Reviews"):
requests matched to jit policies (or refused with the reason), approvals by distinct approvers
(never the requester, an agent or the admin_token), denial, grants capped at max_duration,
grants surviving a restart, revocation, who sees what, per-statement review decisions, and the
webhook for new pending requests. Session behaviour (statements allowed, sessions cut) is tested
in test_policy*.py, not here."""
import http.server
import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import PGMOAT, Gateway, free_port, main  # noqa: E402

S = {}
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
HOOK_SECRET = "hook-secret-" + os.urandom(6).hex()

POLICIES = """\
policies:
  - name: dev-write
    who: [group:dev]
    connections: [main]
    scope: write
    tables: [public.*, audit.events]
    access: jit
    max_duration: 1h
    approval: {approvers: [group:oncall], required: 2}
    review: [ddl]
  - name: dev-read-now
    who: [group:dev]
    connections: [main]
    scope: read
    access: jit
    max_duration: 30m
  - name: dev-standing
    who: [group:dev]
    connections: [other]
    scope: read
  - name: ops-admin
    who: [group:ops]
    connections: [other]
    scope: admin
    access: jit
    max_duration: 2h
    approval: {approvers: [identity:bob], required: 1}
"""


class Hook(http.server.BaseHTTPRequestHandler):
    """The webhook receiver: records every body; answers S["hook_fail"] times 503 first."""

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with S["hook_lock"]:
            S["hook_hits"].append((self.path, self.headers.get("Content-Type"), body))
            fail = S["hook_fail"] > 0
            if fail:
                S["hook_fail"] -= 1
        self.send_response(503 if fail else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


def setup_module():
    S.update(hook_hits=[], hook_lock=threading.Lock(), hook_fail=0)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    S["hook"] = srv
    dead = free_port()   # no upstream is contacted in this module
    conns = [dict(name=n, host="127.0.0.1", port=dead, database="app", user="gw_scram",
                  password="env:GW_SCRAM_PW", sslmode="disable") for n in ("main", "other")]
    extra = POLICIES + "notify:\n  webhook: \"http://127.0.0.1:%d/hook/%s\"\n" % (srv.server_address[1], HOOK_SECRET)
    gw = Gateway(connections=conns, env={"GW_SCRAM_PW": "unused"}, extra=extra).start()
    S["gw"] = gw
    people = {
        "alice": ("human", ["dev"]),          # asks
        "bob": ("human", ["oncall"]),         # approver
        "carol": ("human", ["oncall"]),       # approver
        "dan": ("human", ["dev", "oncall"]),  # asks, and approves others
        "robo": ("agent", ["oncall", "dev"]), # an agent in the approvers' group
        "eve": ("human", []),                 # nobody
        "ada": ("human", ["dba"]),            # an admin (admins: [group:dba])
        "olga": ("human", ["ops"]),
    }
    S["tok"] = {}
    for name, (kind, groups) in people.items():
        gw.add_identity(name, kind=kind, groups=groups)
        S["tok"][name] = gw.issue_token(name)


def api(method, path, body=None, who=None):
    """Call the API as identity `who` (None: the bootstrap admin_token)."""
    return S["gw"].api(method, path, body, token=S["tok"][who] if who else None)


def cli(*args, who=None):
    env = dict(os.environ, PGMOAT_GATEWAY=S["gw"].url, PGMOAT_TOKEN=S["tok"][who] if who else S["gw"].admin_token)
    return subprocess.run([PGMOAT] + list(args), capture_output=True, text=True, env=env, timeout=60)


def ask(who="alice", scope="write", duration="30m", reason="fix invoice 42", **kw):
    body = dict(connection=kw.pop("connection", "main"), scope=scope, duration=duration, reason=reason, **kw)
    return api("POST", "/v1/requests", body, who=who)


def pending_request(who="alice", **kw):
    st, r = ask(who, **kw)
    assert st == 201 and r["state"] == "pending", (st, r)
    return r["id"]


def approve(rid, who, comment=None):
    return api("POST", "/v1/requests/%d/approve" % rid, {"comment": comment} if comment else None, who=who)


def wait_for(pred, timeout=5.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def check_time(obj, key, near=None, slack=10):
    """A time field: RFC 3339 UTC plus unix seconds, agreeing with each other."""
    s, u = obj[key], obj[key + "_unix"]
    assert isinstance(s, str) and RFC3339.match(s), (key, s)
    assert isinstance(u, int), (key, u)
    parsed = time.mktime(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert abs(parsed - u) <= 1, (key, s, u)
    if near is not None:
        assert abs(u - near) <= slack, (key, u, near)


# ---- requests and approvals ----

def test_request_pending_then_two_distinct_approvals_grant():
    st, r = ask(tables=["public.invoices", "audit.events"], reason="fix invoice 42")
    assert st == 201, (st, r)
    assert r["state"] == "pending" and r["required"] == 2 and r["approvals"] == [], r
    assert r["identity"] == "alice" and r["connection"] == "main" and r["policy"] == "dev-write", r
    assert r["scope"] == "write" and r["tables"] == ["public.invoices", "audit.events"], r
    assert r["duration_s"] == 1800 and r["duration_capped"] is False and r["grant"] is None, r
    assert isinstance(r["id"], int) and r["grant_id"] is None and r["decided_at"] is None, r
    check_time(r, "created_at", near=time.time())
    rid = r["id"]
    st, lst = api("GET", "/v1/requests?state=pending", who="bob")
    assert st == 200 and rid in [x["id"] for x in lst], (st, lst)

    st, r = approve(rid, "bob", comment="looks fine")
    assert st == 200 and r["state"] == "pending" and r["approvals"] == ["bob"], (st, r)
    # the same approver again: refused, and still one approval
    st, r2 = approve(rid, "bob")
    assert st == 409 and "already approved" in r2["error"], (st, r2)
    st, r = api("GET", "/v1/requests/%d" % rid, who="bob")
    assert st == 200 and r["approvals"] == ["bob"] and r["state"] == "pending", (st, r)

    st, r = approve(rid, "carol")
    assert st == 200 and r["state"] == "granted" and r["approvals"] == ["bob", "carol"], (st, r)
    g = r["grant"]
    assert isinstance(g["id"], int) and r["grant_id"] == g["id"] and g["request_id"] == rid, r
    assert g["identity"] == "alice" and g["scope"] == "write" and g["state"] == "active" and g["active"], g
    assert g["tables"] == ["public.invoices", "audit.events"] and g["policy"] == "dev-write", g
    check_time(g, "granted_at", near=time.time())
    check_time(g, "expires_at", near=time.time() + 1800)
    assert "bob: looks fine" in r["comment"], r
    # decided: a further approval or denial is a conflict
    st, out = approve(rid, "dan")
    assert st == 409 and "already granted" in out["error"], (st, out)
    st, out = api("POST", "/v1/requests/%d/deny" % rid, who="dan")
    assert st == 409, (st, out)
    # listed as active for an admin and for alice herself
    st, grants = api("GET", "/v1/grants?active=true", who="ada")
    assert st == 200 and g["id"] in [x["id"] for x in grants], (st, grants)
    st, grants = api("GET", "/v1/grants?active=true", who="alice")
    assert st == 200 and [x["id"] for x in grants if x["id"] == g["id"]] == [g["id"]], grants
    assert all(x["identity"] == "alice" for x in grants), grants
    S["granted"] = g["id"]


def test_self_approval_refused():
    rid = pending_request("dan", reason="dan needs to write")
    st, out = approve(rid, "dan")
    assert st == 403 and "own" in out["error"], (st, out)
    st, out = api("POST", "/v1/requests/%d/deny" % rid, who="dan")
    assert st == 403 and "own" in out["error"], (st, out)
    st, r = api("GET", "/v1/requests/%d" % rid, who="dan")
    assert st == 200 and r["approvals"] == [] and r["state"] == "pending", r


def test_agent_in_approvers_group_refused():
    rid = pending_request()
    st, out = approve(rid, "robo")
    assert st == 403 and "agent" in out["error"], (st, out)
    r = cli("approve", str(rid), who="robo")
    assert r.returncode == 1 and "agent" in r.stderr and r.stderr.startswith("pgmoat: "), (r.returncode, r.stderr)
    st, r = api("GET", "/v1/requests/%d" % rid)
    assert r["approvals"] == [], r


def test_admin_token_cannot_approve_or_request():
    rid = pending_request()
    st, out = approve(rid, None)
    assert st == 403 and "admin_token" in out["error"] and "attributable" in out["error"], (st, out)
    st, out = api("POST", "/v1/requests/%d/deny" % rid)
    assert st == 403 and "attributable" in out["error"], (st, out)
    st, out = api("POST", "/v1/requests", dict(connection="main", scope="read", reason="x"))
    assert st == 403 and "admin_token" in out["error"], (st, out)
    # an admin identity may approve (and counts like any approver)
    st, r = approve(rid, "ada")
    assert st == 200 and r["approvals"] == ["ada"], (st, r)


def test_non_approver_refused():
    rid = pending_request()
    st, out = approve(rid, "eve")
    assert st == 403 and "approver" in out["error"] and "dev-write" in out["error"], (st, out)
    # olga approves ops-admin requests only by identity:bob; she is not bob
    st, out = approve(rid, "olga")
    assert st == 403, (st, out)


def test_deny_ends_request():
    rid = pending_request(reason="please")
    st, r = approve(rid, "bob")
    assert st == 200 and r["state"] == "pending"
    st, r = api("POST", "/v1/requests/%d/deny" % rid, {"comment": "not during the freeze"}, who="carol")
    assert st == 200 and r["state"] == "denied" and r["decided_by"] == "carol", (st, r)
    assert "not during the freeze" in r["comment"] and r["grant"] is None and r["grant_id"] is None, r
    check_time(r, "decided_at", near=time.time())
    for who in ("dan", "carol"):
        st, out = approve(rid, who)
        assert st == 409 and "denied" in out["error"], (st, out)
    st, lst = api("GET", "/v1/requests?state=denied", who="ada")
    assert rid in [x["id"] for x in lst]
    st, lst = api("GET", "/v1/requests?state=pending", who="ada")
    assert rid not in [x["id"] for x in lst]


def test_no_matching_policy_is_explained():
    # nothing jit on connection "other" for group dev: its only policy there is standing
    st, out = ask(connection="other", scope="read")
    assert st == 403, (st, out)
    msg = out["error"]
    assert "dev-standing" in msg and "standing" in msg and "ops-admin" in msg and "not for identity" in msg, msg
    # scope above every jit policy alice has
    st, out = ask(scope="admin")
    assert st == 403 and "dev-write" in out["error"] and "write at most" in out["error"], (st, out)
    assert "dev-read-now" in out["error"] and "read at most" in out["error"], out
    # a table outside the allow-list: dev-write lists public.* and audit.events; dev-read-now only allows read
    st, out = ask(tables=["audit.secrets"])
    assert st == 403 and "audit.secrets" in out["error"] and "not in its tables" in out["error"], (st, out)
    # someone no policy names
    st, out = ask(who="eve", scope="read")
    assert st == 403 and "not for identity 'eve'" in out["error"], (st, out)
    # bad input: 400
    for body in (dict(connection="nope", scope="read", reason="x"), dict(connection="main", scope="root", reason="x"),
                 dict(connection="main", scope="read"), dict(connection="main", scope="read", reason="x",
                                                              tables=["no_schema"]),
                 dict(connection="main", scope="read", reason="x", duration="soon"), {"scope": "read"}):
        st, out = api("POST", "/v1/requests", body, who="alice")
        assert st == 400 and out["error"], (body, st, out)
    st, out = api("POST", "/v1/requests", dict(connection="nope", scope="read", reason="x"), who="alice")
    assert "unknown connection" in out["error"], out
    # via the CLI: exit 1, the reason on stderr
    r = cli("request", "other", "--scope", "read", "--for", "10m", "--reason", "look", who="alice")
    assert r.returncode == 1 and "dev-standing" in r.stderr and r.stdout == "", (r.returncode, r.stdout, r.stderr)


def test_auto_grant_and_duration_capped():
    st, r = ask(scope="read", duration="2h", reason="read the invoices")
    assert st == 201 and r["state"] == "granted" and r["policy"] == "dev-read-now" and r["required"] == 0, (st, r)
    assert r["duration_s"] == 1800 and r["duration_capped"] is True, r
    g = r["grant"]
    assert g and g["id"] == r["grant_id"] and g["state"] == "active", r
    assert g["expires_at_unix"] - g["granted_at_unix"] == 1800, g
    check_time(g, "expires_at", near=time.time() + 1800)
    # a duration in seconds, under the cap, is kept; no duration means the policy's max
    st, r = ask(scope="read", duration=600, reason="ten minutes")
    assert st == 201 and r["duration_s"] == 600 and r["duration_capped"] is False, (st, r)
    st, r = api("POST", "/v1/requests", dict(connection="main", scope="read", reason="default"), who="alice")
    assert st == 201 and r["duration_s"] == 1800 and r["duration_capped"] is False, (st, r)
    # write with the approval policy: capped at its 1h
    st, r = ask(duration="3h")
    assert st == 201 and r["state"] == "pending" and r["duration_s"] == 3600 and r["duration_capped"], (st, r)


def test_visibility():
    rid = pending_request(reason="mine")
    st, lst = api("GET", "/v1/requests", who="alice")
    assert st == 200 and lst and all(x["identity"] == "alice" for x in lst), lst
    st, lst = api("GET", "/v1/requests", who="eve")
    assert st == 200 and lst == [], lst
    st, out = api("GET", "/v1/requests/%d" % rid, who="eve")
    assert st == 403, (st, out)
    st, out = api("GET", "/v1/requests/999999", who="alice")
    assert st == 404, (st, out)
    # an approver of dev-write sees alice's request; olga (ops) does not
    st, lst = api("GET", "/v1/requests?state=pending", who="carol")
    assert rid in [x["id"] for x in lst]
    st, lst = api("GET", "/v1/requests?state=pending", who="olga")
    assert rid not in [x["id"] for x in lst]
    # grants: only one's own unless admin
    st, lst = api("GET", "/v1/grants", who="eve")
    assert st == 200 and lst == [], lst
    st, out = api("GET", "/v1/grants/%d" % S["granted"], who="eve")
    assert st == 403, (st, out)
    st, g = api("GET", "/v1/grants/%d" % S["granted"], who="alice")
    assert st == 200 and g["id"] == S["granted"], (st, g)
    # identities, tokens and sessions stay admin-only
    for path in ("/v1/identities", "/v1/tokens", "/v1/sessions"):
        st, out = api("GET", path, who="alice")
        assert st == 403 and "not an admin" in out["error"], (path, st, out)
    st, out = api("GET", "/v1/requests?state=bogus", who="alice")
    assert st == 400, (st, out)
    st, out = api("POST", "/v1/requests/abc/approve", who="bob")
    assert st == 404, (st, out)
    st, out = api("POST", "/v1/requests/999999/approve", who="bob")
    assert st == 404, (st, out)


# ---- revocation ----

def test_revoke():
    rid = pending_request(reason="to revoke")
    approve(rid, "bob")
    st, r = approve(rid, "carol")
    gid = r["grant"]["id"]
    st, out = api("DELETE", "/v1/grants/%d" % gid, who="eve")
    assert st == 403 and "revoke" in out["error"], (st, out)
    st, out = api("DELETE", "/v1/grants/%d" % gid, who="bob")   # an approver is not an admin
    assert st == 403, (st, out)
    st, g = api("DELETE", "/v1/grants/%d" % gid)                  # the admin_token may revoke
    assert st == 200 and g["state"] == "revoked" and g["active"] is False and g["revoked_by"] == "admin_token", g
    check_time(g, "revoked_at", near=time.time())
    st, out = api("DELETE", "/v1/grants/%d" % gid)
    assert st == 409 and "already revoked" in out["error"], (st, out)
    st, lst = api("GET", "/v1/grants?active=true")
    assert gid not in [x["id"] for x in lst]
    st, lst = api("GET", "/v1/grants")
    assert [x["state"] for x in lst if x["id"] == gid] == ["revoked"], lst
    st, out = api("DELETE", "/v1/grants/999999")
    assert st == 404, (st, out)
    # the grant's own identity may give it up
    st, r = ask(scope="read", reason="short look")
    st, g = api("DELETE", "/v1/grants/%d" % r["grant"]["id"], who="alice")
    assert st == 200 and g["revoked_by"] == "alice" and g["state"] == "revoked", (st, g)


# ---- the CLI ----

def test_cli_request_approve_grants_revoke():
    r = cli("request", "main", "--scope", "write", "--tables", "public.invoices", "--for", "10m",
            "--reason", "fix via cli", who="alice")
    assert r.returncode == 0, (r.returncode, r.stderr)
    m = re.match(r"request (\d+) pending", r.stdout)
    assert m, r.stdout
    rid = int(m.group(1))
    r = cli("requests", "--pending", who="bob")
    assert r.returncode == 0 and "IDENTITY" in r.stdout.splitlines()[0], r
    row = [l for l in r.stdout.splitlines() if l.split()[:1] == [str(rid)]]
    assert row and "alice" in row[0] and "write" in row[0] and "10m" in row[0] and "0/2" in row[0], r.stdout
    data = json.loads(cli("requests", "--json", who="bob").stdout)
    assert [x["reason"] for x in data if x["id"] == rid] == ["fix via cli"], data
    r = cli("approve", str(rid), "--comment", "ok", who="bob")
    assert r.returncode == 0 and "pending" in r.stdout and "1 of 2" in r.stdout, (r.stdout, r.stderr)
    r = cli("approve", str(rid), who="bob")
    assert r.returncode == 1 and "already approved" in r.stderr, (r.returncode, r.stderr)
    r = cli("approve", str(rid), who="carol")
    assert r.returncode == 0, r.stderr
    m = re.match(r"request %d granted: grant (\d+), write on main until (\S+)" % rid, r.stdout)
    assert m and RFC3339.match(m.group(2)), r.stdout
    gid = int(m.group(1))
    r = cli("grants", "--active", who="alice")
    row = [l for l in r.stdout.splitlines() if l.split()[:1] == [str(gid)]]
    assert r.returncode == 0 and row and "active" in row[0] and "public.invoices" in row[0], r.stdout
    r = cli("revoke", str(gid), who="ada")
    assert r.returncode == 0 and "revoked" in r.stdout, (r.stdout, r.stderr)
    assert str(gid) not in [l.split()[0] for l in cli("grants", "--active").stdout.splitlines()[1:]]
    data = json.loads(cli("grants", "--json").stdout)
    assert [g["state"] for g in data if g["id"] == gid] == ["revoked"], data
    # auto-granted via the CLI prints the grant and its expiry
    r = cli("request", "main", "--scope", "read", "--for", "5m", "--reason", "peek", who="alice")
    assert r.returncode == 0 and re.match(r"request \d+ granted: grant \d+, read on main until \S+Z", r.stdout), r
    # deny via the CLI
    rid = pending_request(reason="deny me")
    r = cli("deny", str(rid), "--comment", "no", who="carol")
    assert r.returncode == 0 and "denied" in r.stdout, (r.stdout, r.stderr)
    r = cli("deny", str(rid), who="carol")
    assert r.returncode == 1 and "already denied" in r.stderr, r.stderr


def test_cli_usage_and_help():
    verbs = [("request",), ("requests",), ("approve",), ("deny",), ("grants",), ("revoke",), ("reviews",),
             ("review",), ("review", "approve"), ("review", "deny")]
    for v in verbs:
        r = cli(*(v + ("--help",)))
        assert r.returncode == 0 and "usage" in r.stdout.lower(), (v, r.returncode, r.stdout, r.stderr)
    for args in (("request",), ("request", "main"), ("request", "main", "--scope", "read"),
                 ("request", "main", "--reason", "x"), ("request", "main", "--scope"), ("approve",),
                 ("approve", "abc"), ("approve", "1", "extra"), ("deny", "-1"), ("revoke",), ("revoke", "x"),
                 ("requests", "--bogus"), ("grants", "--pending"), ("reviews", "--active"), ("review",),
                 ("review", "approve"), ("review", "maybe", "1"), ("review", "deny", "x")):
        r = cli(*args)
        assert r.returncode == 2 and "usage" in (r.stdout + r.stderr).lower(), (args, r.returncode, r.stderr)
    for args in (("approve", "999999"), ("deny", "999999"), ("revoke", "999999"), ("review", "approve", "999999")):
        r = cli(*args, who="ada")
        assert r.returncode == 1 and r.stderr.startswith("pgmoat: "), (args, r.returncode, r.stderr)
    r = subprocess.run([PGMOAT, "--help"], capture_output=True, text=True)
    for verb in ("request", "requests", "approve", "grants", "revoke", "reviews", "review"):
        assert re.search(r"^\s+%s\b" % verb, r.stdout, re.M) or (" %s " % verb) in r.stdout, (verb, r.stdout)


# ---- reviews (rows made here; sessions create them in production) ----

def insert_review(identity="alice", policy="dev-write", statement="DROP TABLE public.old_invoices", state="pending"):
    db = sqlite3.connect(os.path.join(S["gw"].dir, "state.db"), timeout=10)
    try:
        cur = db.execute("INSERT INTO reviews(identity, connection, policy, class, statement, hash, session, state, "
                         "created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                         (identity, "main", policy, 2, statement, os.urandom(32), "sess-1", state, int(time.time())))
        db.commit()
        return cur.lastrowid
    finally:
        db.close()


def test_reviews_list_approve_deny():
    r1 = insert_review()
    r2 = insert_review(statement="ALTER TABLE public.invoices ADD COLUMN note text")
    st, lst = api("GET", "/v1/reviews?state=pending", who="bob")
    assert st == 200, (st, lst)
    rev = [x for x in lst if x["id"] == r1]
    assert rev and rev[0]["class"] == "ddl" and rev[0]["statement"] == "DROP TABLE public.old_invoices", lst
    assert rev[0]["identity"] == "alice" and rev[0]["state"] == "pending" and len(rev[0]["hash"]) == 64, rev
    check_time(rev[0], "created_at", near=time.time())
    # who may not: the statement's author, an agent, the admin_token, a stranger
    for who, needle in (("alice", "own"), ("robo", "agent"), (None, "attributable"), ("eve", "approver")):
        st, out = api("POST", "/v1/reviews/%d/approve" % r1, who=who)
        assert st == 403 and needle in out["error"], (who, st, out)
    st, out = api("POST", "/v1/reviews/%d/approve" % r1, {"comment": "once"}, who="bob")
    assert st == 200 and out["state"] == "approved" and out["decided_by"] == "bob" and out["comment"] == "once", out
    check_time(out, "decided_at", near=time.time())
    st, out = api("POST", "/v1/reviews/%d/approve" % r1, who="carol")
    assert st == 409 and "already approved" in out["error"], (st, out)
    st, out = api("POST", "/v1/reviews/%d/deny" % r1, who="carol")
    assert st == 409, (st, out)
    st, out = api("POST", "/v1/reviews/999999/approve", who="bob")
    assert st == 404, (st, out)
    # deny through the CLI
    r = cli("review", "deny", str(r2), "--comment", "not now", who="ada")
    assert r.returncode == 0 and "denied" in r.stdout, (r.stdout, r.stderr)
    r = cli("review", "approve", str(r2), who="carol")
    assert r.returncode == 1 and "already denied" in r.stderr, r.stderr
    r = cli("reviews", who="bob")
    rows = {l.split()[0]: l for l in r.stdout.splitlines()[1:]}
    assert "approved" in rows[str(r1)] and "denied" in rows[str(r2)] and "DROP TABLE" in rows[str(r1)], r.stdout
    assert str(r1) not in [l.split()[0] for l in cli("reviews", "--pending", who="bob").stdout.splitlines()[1:]]
    # the author sees her own reviews; a stranger sees none
    st, lst = api("GET", "/v1/reviews", who="alice")
    assert {r1, r2} <= {x["id"] for x in lst}, lst
    st, lst = api("GET", "/v1/reviews", who="eve")
    assert st == 200 and lst == [], lst
    st, out = api("GET", "/v1/reviews/%d" % r1, who="eve")
    assert st == 403, (st, out)
    # a review under a policy that is gone: only admins decide
    r3 = insert_review(policy="no-such-policy")
    st, out = api("POST", "/v1/reviews/%d/approve" % r3, who="bob")
    assert st == 403, (st, out)
    st, out = api("POST", "/v1/reviews/%d/approve" % r3, who="ada")
    assert st == 200 and out["state"] == "approved", (st, out)


def test_review_text_that_is_not_utf8_is_listed():
    db = sqlite3.connect(os.path.join(S["gw"].dir, "state.db"), timeout=10)
    cur = db.execute("INSERT INTO reviews(identity, connection, policy, class, statement, hash, session, state, "
                     "created_at) VALUES ('alice','main','dev-write',2,CAST(? AS TEXT),?,'s','pending',1)",
                     (b"DROP TABLE caf\xe9", os.urandom(32)))
    db.commit()
    rid = cur.lastrowid
    db.close()
    st, out = api("GET", "/v1/reviews/%d" % rid, who="bob")
    assert st == 200 and out["statement"].startswith("DROP TABLE caf"), (st, out)


# ---- the webhook ----

def hook_bodies(event):
    with S["hook_lock"]:
        return [(p, ct, json.loads(b)) for p, ct, b in S["hook_hits"] if json.loads(b).get("event") == event]


def test_webhook_receives_new_pending_request():
    rid = pending_request(reason="webhook <check> & more")
    hit = wait_for(lambda: [h for h in hook_bodies("request.pending") if h[2]["id"] == rid], what="the webhook")[0]
    path, ctype, body = hit
    assert path == "/hook/" + HOOK_SECRET and ctype == "application/json", (path, ctype)
    assert body["identity"] == "alice" and body["connection"] == "main" and body["scope"] == "write", body
    assert body["reason"] == "webhook <check> & more" and body["policy"] == "dev-write" and body["required"] == 2
    assert RFC3339.match(body["created_at"]) and isinstance(body["created_at_unix"], int), body
    assert "pgmoat approve %d" % rid in body["text"] and "&lt;check&gt; &amp; more" in body["text"], body
    raw = json.dumps(body)
    for tok in S["tok"].values():
        assert tok not in raw
    assert S["gw"].admin_token not in raw
    # auto-granted requests are not announced
    st, r = ask(scope="read", reason="no hook for me")
    time.sleep(0.5)
    assert not [h for h in hook_bodies("request.pending") if h[2]["id"] == r["id"]]
    # the gateway never logs the webhook URL (it may carry a secret) nor a token
    log = S["gw"].read_log()
    assert HOOK_SECRET not in log, "the webhook URL was logged"
    for tok in S["tok"].values():
        assert tok not in log


def test_webhook_retries_after_an_error():
    with S["hook_lock"]:
        S["hook_fail"] = 1
    t0 = time.time()
    rid = pending_request(reason="retry me")
    st, r = api("GET", "/v1/requests/%d" % rid, who="alice")
    assert st == 200 and time.time() - t0 < 2, "the request waited for the webhook"
    wait_for(lambda: len([h for h in hook_bodies("request.pending") if h[2]["id"] == rid]) == 2, timeout=8,
             what="the retried webhook")
    assert "answered HTTP 503" in S["gw"].read_log()


# ---- restart ----

def test_grants_survive_restart():
    gw = S["gw"]
    st, before = api("GET", "/v1/grants?active=true")
    assert st == 200 and S["granted"] in [g["id"] for g in before], before
    assert gw.stop() == 0
    gw.start()
    st, after = api("GET", "/v1/grants?active=true")
    assert st == 200 and [g["id"] for g in after] == [g["id"] for g in before], (before, after)
    mine = [g for g in after if g["id"] == S["granted"]][0]
    assert mine["identity"] == "alice" and mine["state"] == "active", mine
    # requests and their decisions too; ids keep counting up
    st, r = api("GET", "/v1/requests?state=granted")
    assert st == 200 and r, r
    rid = pending_request(reason="after restart")
    assert rid > max(x["id"] for x in r)


def test_gateway_stops_cleanly():
    """Last: SIGTERM ends the gateway with exit 0 and no sanitizer report in its log."""
    assert S["gw"].stop() == 0
    S["hook"].shutdown()


main(globals())
