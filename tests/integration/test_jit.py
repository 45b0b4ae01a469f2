#!/usr/bin/python3
"""Issue 3, end to end through real sessions: just-in-time grants and per-statement reviews.

request -> approval by two approvers -> the agent's statements run -> a 2 s grant expires and the
open session is cut with FATAL 57P01 within a second; revoking a grant cuts its sessions; a restart
keeps grants; a statement in review runs once after approval. (Who may approve, the API and CLI
shapes and the webhook are covered by test_access.py.)
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import Gateway, main, shared_postgres  # noqa: E402
from rawpg import RawSession, read_msg, error_fields  # noqa: E402

import psycopg  # noqa: E402

S = {}

POLICIES = """policies:
  - name: jit-write
    who: [group:g-jit]
    connections: [main]
    scope: write
    access: jit
    max_duration: 1h
    approval: {approvers: [group:dba], required: 2}
  - name: jit-auto
    who: [group:g-auto]
    connections: [main]
    scope: read
    access: jit
    max_duration: 10m
  - name: reviewed-ddl
    who: [group:g-rev]
    connections: [main]
    scope: ddl
    review: [ddl]
"""


def setup_module():
    pg = shared_postgres()
    pg.sql("CREATE TABLE IF NOT EXISTS jit_t (id int PRIMARY KEY, v text)", db="app")
    pg.sql("INSERT INTO jit_t VALUES (1, 'one') ON CONFLICT DO NOTHING", db="app")
    pg.sql("ALTER TABLE jit_t OWNER TO gw_scram", db="app")
    gw = Gateway(pg, extra=POLICIES).start()
    S.update(pg=pg, gw=gw)
    S["agent"] = gw.agent("jit-agent", ["g-jit"])[1]
    S["auto"] = gw.agent("auto-agent", ["g-auto"])[1]
    S["rev"] = gw.agent("rev-agent", ["g-rev"])[1]
    for h in ("alice", "bob"):
        gw.add_identity(h, kind="human", groups=["dba"])
        S[h] = gw.issue_token(h)


def api(method, path, body=None, who=None):
    return S["gw"].api(method, path, body, token=S[who] if who else None)


def raw(token_key, user):
    return RawSession(S["gw"].port, user, S[token_key], dbname="main", tls=False)


def wait_fatal(rs, timeout):
    """Wait for the gateway's FATAL on an idle session; returns (fields, seconds waited)."""
    rs.sock.settimeout(timeout)
    t0 = time.time()
    while True:
        t, body = read_msg(rs.sock)
        if t == b"E":
            return error_fields(body), time.time() - t0


def test_request_two_approvals_then_expiry_cuts_session():
    rs = raw("agent", "jit-agent")
    try:
        rows, err = rs.query("UPDATE jit_t SET v = 'x' WHERE id = 1")
        assert err and err["C"] == "42501" and "no policy" in err["M"], err
        assert "pgmoat request main --scope write" in err.get("H", ""), err
        st, req = api("POST", "/v1/requests", {"connection": "main", "scope": "write", "duration": "3s",
                                                "reason": "fix invoice 1"}, who="agent")
        assert st == 201 and req["state"] == "pending", (st, req)
        rid = req["id"]
        st, body = api("POST", "/v1/requests/%d/approve" % rid, {}, who="agent")
        assert st == 403, (st, body)   # never the requester
        st, body = api("POST", "/v1/requests/%d/approve" % rid, {}, who="alice")
        assert st == 200 and body["state"] == "pending", (st, body)
        rows, err = rs.query("UPDATE jit_t SET v = 'x' WHERE id = 1")
        assert err and err["C"] == "42501", err  # one approval is not enough
        st, body = api("POST", "/v1/requests/%d/approve" % rid, {}, who="bob")
        assert st == 200 and body["state"] == "granted", (st, body)
        grant = body["grant"]
        # The open session takes the grant up at its next statement.
        rows, err = rs.query("UPDATE jit_t SET v = 'granted' WHERE id = 1")
        assert err is None, err
        # A write grant lifts the read-only floor for this session.
        rows, err = rs.query("SHOW default_transaction_read_only")
        assert rows == [["off"]], rows
        left = grant["expires_at_unix"] - time.time()
        fields, waited = wait_fatal(rs, timeout=left + 5)
        assert fields["S"] == "FATAL" and fields["C"] == "57P01", fields
        assert "expired" in fields["M"] and fields["M"].startswith("pgmoat:"), fields
        late = time.time() - grant["expires_at_unix"]
        assert late < 1.2, "cut %.2fs after the grant expired" % late
        print("  session cut %.2fs after expiry" % late)
    finally:
        rs.close()
    # A new session after expiry is back to no access.
    rs = raw("agent", "jit-agent")
    try:
        rows, err = rs.query("SELECT 1")
        assert err and err["C"] == "42501", err
    finally:
        rs.close()
    assert S["pg"].sql("SELECT v FROM jit_t WHERE id = 1", db="app") == "granted"


def test_revoke_cuts_sessions():
    st, req = api("POST", "/v1/requests", {"connection": "main", "scope": "read", "duration": "5m",
                                            "reason": "look"}, who="auto")
    assert st == 201 and req["state"] == "granted", (st, req)
    gid = req["grant"]["id"]
    rs1, rs2 = raw("auto", "auto-agent"), raw("auto", "auto-agent")
    try:
        for rs in (rs1, rs2):
            rows, err = rs.query("SELECT v FROM jit_t WHERE id = 1")
            assert err is None, err
        rows, err = rs1.query("UPDATE jit_t SET v = 'no' WHERE id = 1")
        assert err and err["C"] == "42501", err  # the grant is read
        t0 = time.time()
        st, body = api("DELETE", "/v1/grants/%d" % gid, who="alice")
        assert st == 200, (st, body)
        for rs in (rs1, rs2):
            fields, waited = wait_fatal(rs, timeout=5)
            assert fields["C"] == "57P01" and "revoked" in fields["M"], fields
        took = time.time() - t0
        assert took < 1.5, took
        print("  both sessions cut %.2fs after the revocation" % took)
    finally:
        rs1.close()
        rs2.close()


def test_restart_keeps_grants():
    st, req = api("POST", "/v1/requests", {"connection": "main", "scope": "read", "duration": "5m",
                                            "reason": "restart"}, who="auto")
    assert st == 201 and req["state"] == "granted", (st, req)
    gw = S["gw"]
    gw.stop()
    gw.start()
    rs = raw("auto", "auto-agent")
    try:
        rows, err = rs.query("SELECT v FROM jit_t WHERE id = 1")
        assert err is None and rows, err
    finally:
        rs.close()
    api("DELETE", "/v1/grants/%d" % req["grant"]["id"], who="alice")


def test_review_runs_once_after_approval():
    c = psycopg.connect(S["gw"].dsn("rev-agent", S["rev"]), autocommit=True)
    try:
        sql = "CREATE TABLE reviewed_t (a int)"
        try:
            c.execute(sql)
            raise AssertionError("ddl ran without review")
        except psycopg.errors.InsufficientPrivilege as e:
            msg = e.diag.message_primary
            assert msg.startswith("pgmoat: statement requires review #"), msg
            rid = int(msg.rsplit("#", 1)[1])
        # Asking again does not make a second review.
        try:
            c.execute(sql)
        except psycopg.errors.InsufficientPrivilege as e:
            assert e.diag.message_primary.endswith("#%d" % rid), e.diag.message_primary
        # Reads need no review.
        assert c.execute("SELECT 1").fetchone() == (1,)
        st, body = api("GET", "/v1/reviews?state=pending", who="alice")
        assert st == 200 and any(r["id"] == rid for r in body), body
        st, body = api("POST", "/v1/reviews/%d/approve" % rid, {}, who="alice")
        assert st == 200, (st, body)
        # A different statement is still refused; the identical one runs once.
        try:
            c.execute("CREATE TABLE reviewed_t2 (a int)")
            raise AssertionError("an unreviewed statement ran")
        except psycopg.errors.InsufficientPrivilege:
            pass
        c.execute(sql)
        assert S["pg"].sql("SELECT to_regclass('reviewed_t') IS NOT NULL", db="app") == "t"
        try:
            c.execute(sql)
            raise AssertionError("an approved review ran twice")
        except psycopg.errors.InsufficientPrivilege as e:
            assert "requires review" in e.diag.message_primary
        # The extended protocol: decided at Parse, the approved review used once (Parse, then its Bind).
        ext = "CREATE TABLE reviewed_ext (a int)"
        try:
            c.execute(ext, binary=True)
            raise AssertionError("ddl ran without review (extended)")
        except psycopg.errors.InsufficientPrivilege as e:
            rid = int(e.diag.message_primary.rsplit("#", 1)[1])
        st, body = api("POST", "/v1/reviews/%d/approve" % rid, {}, who="bob")
        assert st == 200, (st, body)
        c.execute(ext, binary=True)
        assert S["pg"].sql("SELECT to_regclass('reviewed_ext') IS NOT NULL", db="app") == "t"
    finally:
        c.close()


if __name__ == "__main__":
    main(globals())
