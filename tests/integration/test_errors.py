#!/usr/bin/python3
"""SPEC "Errors a client sees" for the gateway core (issue 2): each login error with its exact
severity and SQLSTATE and a message starting with "pgmoat: ", the upstream failures (08006),
the failed-login rate limit, and an ERROR that leaves the session usable.

psycopg 3.1 gives no SQLSTATE for a failed connection attempt (libpq keeps it to itself), so
every login error is read twice: on the wire by a minimal protocol client (severity, SQLSTATE,
message), and through psycopg/libpq (the message a real client shows).
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import Certs, Gateway, Postgres, free_port, main, psql, shared_postgres  # noqa: E402
from rawpg import RawSession, query_error, raw_login  # noqa: E402

import psycopg  # noqa: E402

S = {}


def setup_module():
    pg = shared_postgres()
    certs = Certs()
    conns = [
        dict(name="main", host="127.0.0.1", port=pg.port, database="app", user="gw_scram",
             password="env:GW_SCRAM_PW", sslmode="disable"),
        # Nothing listens there: the port was free a moment ago and stays closed.
        dict(name="down", host="127.0.0.1", port=free_port(), database="app", user="gw_scram",
             password="env:GW_SCRAM_PW", sslmode="disable"),
        # The database refuses this password.
        dict(name="badpw", host="127.0.0.1", port=pg.port, database="app", user="gw_scram",
             password="env:GW_WRONG_PW", sslmode="disable"),
    ]
    env = {"GW_SCRAM_PW": "scram-pw", "GW_WRONG_PW": "not-the-password"}
    # The main gateway: TLS only, and a generous failure budget so that the many refused logins
    # below do not trip the rate limit (which has its own gateway and test).
    gw = Gateway(pg, tls=certs, connections=conns, plaintext_loopback=False, env=env,
                 extra="limits:\n  auth_failures_per_minute: 1000\n").start()
    S.update(pg=pg, certs=certs, gw=gw, conns=conns, env=env)
    S["ident"], S["token"] = gw.agent("err-agent")


def expect_login_error(sqlstate, user, password, dbname="main", tls=True, contains=None, gw=None, libpq=True,
                       sslmode=None):
    """Assert a refused login on the wire (FATAL, sqlstate, 'pgmoat: ' message) and through libpq."""
    gw = gw or S["gw"]
    kind, f = raw_login(gw, user, password, dbname, tls=tls)
    assert kind == "error", "login as %r to %r was accepted" % (user, dbname)
    assert f.get("S") == "FATAL" and f.get("V") == "FATAL", f
    assert f.get("C") == sqlstate, "expected SQLSTATE %s, got %s: %s" % (sqlstate, f.get("C"), f.get("M"))
    assert f.get("M", "").startswith("pgmoat: "), f
    if contains:
        assert contains.lower() in f["M"].lower(), (contains, f["M"])
    if libpq:
        try:
            c = psycopg.connect(gw.dsn(user, password, dbname=dbname, sslmode=sslmode), connect_timeout=10)
        except psycopg.OperationalError as e:
            msg = str(e)
            assert "FATAL:  pgmoat: " in msg, msg
            if contains:
                assert contains.lower() in msg.lower(), (contains, msg)
        else:
            c.close()
            raise AssertionError("psycopg login as %r to %r was accepted" % (user, dbname))
    return f


# ---- the tests ----

def test_good_login_works():
    kind, f = raw_login(S["gw"], S["ident"], S["token"])
    assert kind == "ok", f
    with psycopg.connect(S["gw"].dsn(S["ident"], S["token"])) as c:
        assert c.execute("SELECT current_user, current_database()").fetchone() == ("gw_scram", "app")


def test_bad_token_28P01():
    gw = S["gw"]
    expect_login_error("28P01", S["ident"], "not-a-token")
    # Well-formed, right id, wrong secret.
    tok = S["token"]
    forged = tok[:17] + ("A" if tok[17] != "A" else "B") + tok[18:]
    expect_login_error("28P01", S["ident"], forged)
    # A well-formed token whose id does not exist.
    expect_login_error("28P01", S["ident"], "pgm_000000000000_" + "A" * 43)
    # Empty password.
    kind, f = raw_login(gw, S["ident"], "")
    assert kind == "error" and f["S"] == "FATAL" and f["C"] in ("28P01", "08P01"), f
    assert f["M"].startswith("pgmoat: "), f


def test_token_of_another_identity_28000():
    gw = S["gw"]
    other, other_tok = gw.agent("err-other")
    # user names err-agent, the token belongs to err-other.
    expect_login_error("28000", S["ident"], other_tok, contains="does not match")
    # and the other way round
    expect_login_error("28000", other, S["token"], contains="does not match")
    # a user that is no identity at all
    expect_login_error("28000", "nobody-at-all", S["token"])


def test_revoked_token_28P01():
    gw = S["gw"]
    gw.add_identity("err-revoked")
    st, out = gw.api("POST", "/v1/tokens", {"identity": "err-revoked"})
    assert st == 201, (st, out)
    assert raw_login(gw, "err-revoked", out["token"])[0] == "ok"
    st, body = gw.api("DELETE", "/v1/tokens/" + out["id"])
    assert st == 200, (st, body)
    expect_login_error("28P01", "err-revoked", out["token"], contains="revoked")


def test_expired_token_28P01():
    gw = S["gw"]
    gw.add_identity("err-expired")
    tok = gw.issue_token("err-expired", ttl="1s")
    time.sleep(2.1)  # expiry has one-second resolution
    expect_login_error("28P01", "err-expired", tok, contains="expired")


def test_disabled_identity_28000():
    gw = S["gw"]
    name, tok = gw.agent("err-disabled")
    assert raw_login(gw, name, tok)[0] == "ok"
    st, body = gw.api("POST", "/v1/identities/%s/disable" % name)
    assert st == 200, (st, body)
    expect_login_error("28000", name, tok, contains="disabled")
    st, body = gw.api("POST", "/v1/identities/%s/enable" % name)
    assert st == 200, (st, body)
    assert raw_login(gw, name, tok)[0] == "ok"


def test_unknown_connection_3D000():
    expect_login_error("3D000", S["ident"], S["token"], dbname="no-such-connection",
                           contains="no-such-connection")
    # dbname defaults to the user name when absent; that is no connection either
    kind, f = raw_login(S["gw"], S["ident"], S["token"], dbname="")
    assert kind == "error" and f["C"] == "3D000" and f["M"].startswith("pgmoat: "), f


def test_unknown_connection_does_not_reveal_token_validity():
    # An unknown connection with a bad token is a token error, not a hint that the connection is absent.
    expect_login_error("28P01", S["ident"], "bad-token", dbname="no-such-connection")


def test_plaintext_refused_28000():
    gw = S["gw"]
    # allow_plaintext_loopback is false here: sslmode=disable must be refused, good token or not.
    expect_login_error("28000", S["ident"], S["token"], tls=False, contains="TLS required", sslmode="disable")
    r = psql(gw.dsn(S["ident"], S["token"], sslmode="disable"), "SELECT 1")
    assert r.returncode != 0 and "pgmoat: TLS required" in r.stderr, r.stderr
    # and TLS still works
    r = psql(gw.dsn(S["ident"], S["token"], sslmode="require"), "SELECT 1", args=["-At"])
    assert r.returncode == 0 and r.stdout.strip() == "1", r.stderr


def test_upstream_unreachable_08006():
    expect_login_error("08006", S["ident"], S["token"], dbname="down", contains='"down"')
    # The session did not get stuck: the pool slot is free again and a second try fails the same way.
    expect_login_error("08006", S["ident"], S["token"], dbname="down", libpq=False)
    # and the gateway still serves the other connection
    with psycopg.connect(S["gw"].dsn(S["ident"], S["token"])) as c:
        assert c.execute("SELECT 1").fetchone() == (1,)


def test_upstream_login_failure_08006():
    f = expect_login_error("08006", S["ident"], S["token"], dbname="badpw", contains='"badpw"')
    # the upstream password never appears in what the client sees
    assert "not-the-password" not in str(f)


def test_upstream_down_after_pool_warmed_08006():
    """The upstream dies after the pool has learned its parameters: the login still completes
    (from the pool's cache) and the first statement gets FATAL 08006, never a hang."""
    pg2 = Postgres().start().setup_roles()
    gw2 = Gateway(pg2, tls=S["certs"], plaintext_loopback=False).start()
    name, tok = gw2.agent("warm")
    with psycopg.connect(gw2.dsn(name, tok), connect_timeout=10) as c:
        assert c.execute("SELECT 1").fetchone() == (1,)
    pg2.stop()
    t0 = time.time()
    c = psycopg.connect(gw2.dsn(name, tok), connect_timeout=10)
    try:
        err = query_error(c, "SELECT 1")
    finally:
        c.close()
    assert time.time() - t0 < 8, "took %.1fs" % (time.time() - t0)
    assert err is not None, "a session ran with its upstream down"
    assert err[:2] == ("FATAL", "08006") and err[2].startswith("pgmoat: "), err
    # on the wire
    r = RawSession(gw2.port, name, tok, cafile=S["certs"].ca)
    if r.ok:
        rows, err = r.query("SELECT 1")
        r.close()
    else:
        err = r.error
    assert err and err["S"] == "FATAL" and err["C"] == "08006" and err["M"].startswith("pgmoat: "), err
    gw2.stop()


def test_rate_limit_after_failed_logins():
    pg = S["pg"]
    gw = Gateway(pg, tls=S["certs"], connections=S["conns"][:1], plaintext_loopback=False, env=S["env"],
                 extra="limits:\n  auth_failures_per_minute: 5\n").start()
    name, tok = gw.agent("rl-agent")
    assert raw_login(gw, name, tok)[0] == "ok"
    for i in range(5):
        kind, f = raw_login(gw, name, "wrong-%d" % i)
        assert kind == "error" and f["C"] == "28P01" and "too many" not in f["M"], (i, f)
    # The 6th attempt from this address is refused before the password counts, even a good one.
    kind, f = raw_login(gw, name, tok)
    assert kind == "error", "a login was accepted past the failure limit"
    assert f["S"] == "FATAL" and f["C"] == "28P01", f
    assert f["M"].startswith("pgmoat: too many failed logins"), f
    try:
        psycopg.connect(gw.dsn(name, tok), connect_timeout=10).close()
        raise AssertionError("psycopg login accepted past the failure limit")
    except psycopg.OperationalError as e:
        assert "pgmoat: too many failed logins" in str(e), str(e)
    # Another gateway (another limiter) is unaffected: the budget is per gateway and address.
    assert raw_login(S["gw"], S["ident"], S["token"])[0] == "ok"
    gw.stop()


def test_rate_limit_after_bad_bearer_tokens():
    """The HTTP API counts bad bearer tokens per address, apart from PostgreSQL logins: past the limit it
    answers 429, even to a good token, and psql still logs in."""
    pg = S["pg"]
    gw = Gateway(pg, tls=S["certs"], connections=S["conns"][:1], plaintext_loopback=False, env=S["env"],
                 extra="limits:\n  auth_failures_per_minute: 3\n").start()
    name, tok = gw.agent("rl-http")
    st, _ = gw.api("GET", "/v1/identities", token=tok)
    assert st in (200, 403), st
    for i in range(3):
        st, body = gw.api("GET", "/v1/identities", token="pgm_000000000000_" + "A" * 43)
        assert st == 401, (i, st, body)
    st, body = gw.api("GET", "/v1/identities")  # the admin token, from the same address
    assert st == 429 and "too many invalid bearer tokens" in body["error"], (st, body)
    st, body = gw.api("GET", "/v1/identities", token="pgm_000000000000_" + "B" * 43)
    assert st == 429, (st, body)
    # PostgreSQL logins have their own budget
    assert raw_login(gw, name, tok)[0] == "ok"
    # metrics and health need no token and stay open
    st, _ = gw.api("GET", "/healthz", token="")
    assert st == 200, st
    gw.stop()


def test_session_usable_after_sql_error():
    gw = S["gw"]
    with psycopg.connect(gw.dsn(S["ident"], S["token"]), autocommit=True) as c:
        try:
            c.execute("SELECT 1/0")
            raise AssertionError("no error")
        except psycopg.errors.DivisionByZero as e:
            assert e.sqlstate == "22012"
        assert c.execute("SELECT 2").fetchone() == (2,)
        # extended protocol with parameters, error then success
        try:
            c.execute("SELECT %s::int", ["x"])
            raise AssertionError("no error")
        except psycopg.errors.InvalidTextRepresentation as e:
            assert e.sqlstate == "22P02"
        assert c.execute("SELECT %s::int + 1", [41]).fetchone() == (42,)
        try:
            c.execute("SELECT * FROM no_such_table_here")
            raise AssertionError("no error")
        except psycopg.errors.UndefinedTable as e:
            assert e.sqlstate == "42P01"
        assert c.execute("SELECT 3").fetchone() == (3,)
    # inside a transaction: the error aborts it, ROLLBACK recovers, the transaction state is right
    with psycopg.connect(gw.dsn(S["ident"], S["token"])) as c:
        c.execute("SELECT 1")
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        try:
            c.execute("SELECT 1/0")
        except psycopg.errors.DivisionByZero:
            pass
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
        try:
            c.execute("SELECT 1")
            raise AssertionError("no error")
        except psycopg.errors.InFailedSqlTransaction as e:
            assert e.sqlstate == "25P02"
        c.rollback()
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert c.execute("SELECT 4").fetchone() == (4,)
    # psql: an error in one -c, the next still runs on the same session
    r = psql(gw.dsn(S["ident"], S["token"]), args=["-At", "-c", "SELECT 1/0", "-c", "SELECT 'after'"])
    assert "division by zero" in r.stderr and r.stdout.strip() == "after", (r.stdout, r.stderr)


def test_startup_parameters_that_change_identity_refused():
    """role / session_authorization / read-only floor cannot be set from the startup packet."""
    for params in ({"role": "postgres"}, {"session_authorization": "postgres"},
                   {"default_transaction_read_only": "off"}, {"some_unknown_setting": "1"}):
        kind, f = raw_login(S["gw"], S["ident"], S["token"], params=params)
        assert kind == "error" and f.get("C") == "42501", (params, f)
        assert f["M"].startswith("pgmoat: startup parameter"), f
    kind, f = raw_login(S["gw"], S["ident"], S["token"], params={"options": "-c role=postgres"})
    assert kind == "error" and f.get("C") == "0A000" and "role" in f["M"], f
    # Ordinary session settings still pass.
    kind, f = raw_login(S["gw"], S["ident"], S["token"],
                        params={"application_name": "x", "options": "-c statement_timeout=5s -c search_path=public"})
    assert kind == "ok", f


def test_gateway_stops_cleanly():
    """Last: SIGTERM ends the gateway with exit 0 and no sanitizer report in its log."""
    assert S["gw"].stop() == 0


main(globals())
