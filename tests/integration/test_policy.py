#!/usr/bin/python3
"""Issue 3: statements decided on the parse tree, through the real gateway, against a real PostgreSQL.

The table-driven part runs every case of policy_cases.py through sessions whose policy scope is
read, write, ddl and admin (and one with every guardrail, and one with a table allow-list), over
the simple protocol and (for single statements) the extended protocol. An allowed case must not be
refused by the gateway; a denied one must be refused with 42501 and a message starting "pgmoat: ",
and a fingerprint of the database taken directly on PostgreSQL (every table's rows, sequences,
catalog objects, roles, settings) must be the same before and after.
"""
import os
import socket
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, HERE)
from harness import Gateway, ROOT, main, shared_postgres  # noqa: E402
from rawpg import RawSession, read_msg, error_fields  # noqa: E402

import psycopg  # noqa: E402
import policy_cases  # noqa: E402

S = {}

FINGERPRINT_FN = r"""
CREATE OR REPLACE FUNCTION public.pgmoat_fp() RETURNS text LANGUAGE plpgsql AS $f$
DECLARE
  r record; acc text := ''; h text;
BEGIN
  FOR r IN SELECT c.oid::regclass AS rel, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
             AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast_temp%'
             AND c.relkind IN ('r', 'm', 'S', 'p') ORDER BY 1::text LOOP
    IF r.relkind = 'S' THEN
      EXECUTE format('SELECT last_value::text || is_called::text FROM %s', r.rel) INTO h;
    ELSE
      EXECUTE format('SELECT md5(coalesce(string_agg(t::text, chr(10) ORDER BY t::text), '''')) FROM %s t', r.rel) INTO h;
    END IF;
    acc := acc || r.rel::text || '=' || coalesce(h, 'null') || ';';
  END LOOP;
  acc := acc || coalesce((SELECT string_agg(format('%s.%s:%s:%s:%s', n.nspname, c.relname, c.relkind,
             coalesce(c.relacl::text, ''), coalesce(obj_description(c.oid), '')), ',' ORDER BY 1)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
             AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast_temp%'), '')
    || '|' || coalesce((SELECT string_agg(p.oid::regprocedure::text, ',' ORDER BY 1) FROM pg_proc p
           JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')), '')
    || '|' || coalesce((SELECT string_agg(nspname, ',' ORDER BY 1) FROM pg_namespace), '')
    || '|' || coalesce((SELECT string_agg(rolname || rolsuper::text, ',' ORDER BY 1) FROM pg_roles), '')
    || '|' || coalesce((SELECT string_agg(datname, ',' ORDER BY 1) FROM pg_database), '')
    || '|' || coalesce((SELECT string_agg(setconfig::text, ',' ORDER BY 1) FROM pg_db_role_setting), '')
    || '|' || coalesce((SELECT string_agg(typname, ',' ORDER BY 1) FROM pg_type t JOIN pg_namespace n
           ON n.oid = t.typnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')), '')
    || '|' || (SELECT count(*)::text FROM pg_largeobject_metadata)
    || '|' || coalesce((SELECT string_agg(extname, ',' ORDER BY 1) FROM pg_extension), '');
  RETURN md5(acc);
END $f$;
"""

SCOPES = ["read", "write", "ddl", "admin"]
RANK = {c: i for i, c in enumerate(SCOPES)}
RANK["never"] = 99   # denied under every policy (parser_safety)
GUARDRAILS = ["no_delete_without_where", "no_update_without_where", "no_drop", "no_truncate",
              "no_copy_program", "no_alter_system"]


def policies_yaml():
    lines = ["policies:"]
    for sc in SCOPES:
        lines += ["  - name: p-%s" % sc, "    who: [group:g-%s]" % sc, "    connections: [main]",
                  "    scope: %s" % sc]
    lines += ["  - name: p-guarded", "    who: [group:g-guarded]", "    connections: [main]", "    scope: admin",
              "    guardrails: [%s, {max_rows: 5}]" % ", ".join(GUARDRAILS),
              "  - name: p-tables", "    who: [group:g-tables]", "    connections: [main]", "    scope: read",
              "    tables: [public.invoices, public.customers]",
              "  - name: p-wtables", "    who: [group:g-wtables]", "    connections: [main]", "    scope: write",
              "    tables: [public.invoices, public.customers]",
              "  - name: p-night", "    who: [group:g-night]", "    connections: [main]", "    scope: read",
              "    window: [\"Mon-Fri 22:00-06:00 Europe/Berlin\", \"Sun 10:00-11:00 UTC\"]",
              "  - name: p-day", "    who: [group:g-day]", "    connections: [main]", "    scope: read",
              "    window: \"Mon-Fri 08:00-20:00 Europe/Berlin\"",
              "  - name: p-jit-write", "    who: [group:g-read]", "    connections: [main]", "    scope: write",
              "    access: jit", "    max_duration: 2h",
              "    approval: {approvers: [group:dba], required: 2}"]
    return "\n".join(lines) + "\n"


def setup_module():
    pg = shared_postgres()
    fixture = os.path.join(ROOT, "tests", "sql", "policy_fixture.sql")
    pg.sql("DROP DATABASE IF EXISTS app WITH (FORCE)")
    pg.sql("CREATE DATABASE app OWNER gw_scram")
    pg.sql_file(fixture, db="app")
    pg.sql(FINGERPRINT_FN, db="app")
    # A volatile namesake of the STABLE public.invoice_total, found first once search_path puts "other" first.
    pg.sql("CREATE FUNCTION other.invoice_total(int) RETURNS numeric LANGUAGE sql VOLATILE AS 'SELECT 0::numeric'",
           db="app")
    # A VOLATILE function of a row: callable as i.purge (field selection).
    pg.sql("CREATE FUNCTION public.purge(invoices) RETURNS int LANGUAGE sql VOLATILE AS 'SELECT 1'; "
           "ALTER FUNCTION public.purge(invoices) OWNER TO gw_scram", db="app")
    # The upstream role owns what the fixture made, so that allowed cases really run.
    pg.sql("DO $$DECLARE r record; BEGIN "
           "FOR r IN SELECT nspname FROM pg_namespace WHERE nspname IN ('public', 'other') LOOP "
           "EXECUTE format('ALTER SCHEMA %I OWNER TO gw_scram', r.nspname); END LOOP; "
           "FOR r IN SELECT c.oid::regclass AS o FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
           "WHERE n.nspname IN ('public', 'other') AND c.relkind IN ('r','v','m','S','p') LOOP "
           "EXECUTE format('ALTER TABLE %s OWNER TO gw_scram', r.o); END LOOP; "
           "FOR r IN SELECT p.oid::regprocedure AS f FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
           "WHERE n.nspname IN ('public', 'other') AND p.proname <> 'pgmoat_fp' LOOP "
           "EXECUTE format('ALTER ROUTINE %s OWNER TO gw_scram', r.f); END LOOP; END$$", db="app")
    gw = Gateway(pg, extra=policies_yaml(), env={"PGMOAT_TEST_NOW": "2026-11-25T12:00:00Z"}).start()
    S.update(pg=pg, gw=gw, conns={})
    S["tokens"] = {}
    for name, groups in [("r-agent", ["g-read"]), ("w-agent", ["g-write"]), ("d-agent", ["g-ddl"]),
                         ("a-agent", ["g-admin"]), ("gr-agent", ["g-guarded"]), ("t-agent", ["g-tables"]),
                         ("n-agent", ["g-night"]), ("wt-agent", ["g-wtables"]), ("day-agent", ["g-day"]), ("nobody", [])]:
        S["tokens"][name] = gw.agent(name, groups)[1]


def fp():
    """The fingerprint, read directly on PostgreSQL as the superuser (a kept connection)."""
    c = S.get("fpconn")
    if c is None or c.closed:
        pg = S["pg"]
        c = S["fpconn"] = psycopg.connect(host=pg.sock, port=pg.port, user=pg.SUPERUSER, dbname="app",
                                          autocommit=True)
    return c.execute("SELECT public.pgmoat_fp()").fetchone()[0]


def connect(ident):
    gw = S["gw"]
    return psycopg.connect(gw.dsn(ident, S["tokens"][ident]), autocommit=True)


def conn_for(ident):
    c = S["conns"].get(ident)
    if c is None or c.closed or c.broken:
        c = S["conns"][ident] = connect(ident)
    return c


def run(ident, sql, extended=False):
    """Run sql inside BEGIN/ROLLBACK. Returns None when not refused by the gateway, else the error."""
    c = conn_for(ident)
    try:
        c.execute("BEGIN")
    except psycopg.Error:
        c.close()
        c = conn_for(ident)
        c.execute("BEGIN")
    err = None
    try:
        if extended:
            c.execute(sql, binary=True)  # binary results: psycopg sends Parse/Bind/Execute
        else:
            psycopg.ClientCursor(c).execute(sql)
    except psycopg.Error as e:
        err = e
    try:
        c.execute("ROLLBACK")
    except psycopg.Error:
        c.close()
    return err


def refused(err):
    return err is not None and err.sqlstate in ("42501", "42601") and str(err).startswith("pgmoat:")


def check_case(ident, sql, allowed, norun, extended, label, failures):
    """Check one case; a failure is collected (all are reported at the end of the test)."""
    if allowed and norun:
        return
    before = None if allowed else fp()
    err = run(ident, sql, extended)
    if allowed:
        if refused(err):
            failures.append("%s: refused for %s: %s" % (label, ident, str(err).replace("\n", " | ")))
    elif not refused(err):
        failures.append("%s: NOT refused for %s (error: %r)" % (label, ident, err))
    elif fp() != before:
        failures.append("%s: denied for %s but the database changed" % (label, ident))


def report(failures, n):
    print("  %d case runs, %d wrong" % (n, len(failures)))
    assert not failures, "\n".join(failures[:40])


IDENT = {"read": "r-agent", "write": "w-agent", "ddl": "d-agent", "admin": "a-agent"}


def single_statement(sql):
    s = sql.strip().rstrip(";").strip()
    return ";" not in s and not s.startswith("--")


def test_case_table_under_each_scope():
    """Every case of policy_cases.CASES under read, write, ddl and admin, simple protocol."""
    cases = policy_cases.CASES
    assert len(cases) >= 200, len(cases)
    n, failures = 0, []
    for cid, sql, cls, guard, note in cases:
        norun = (note or "").startswith("norun:")
        for sc in SCOPES:
            check_case(IDENT[sc], sql, RANK[sc] >= RANK[cls], norun, False, "%s [%s] %r" % (cid, sc, sql[:80]),
                       failures)
            n += 1
    report(failures, n)


def test_case_table_extended_protocol():
    """Single-statement cases again over the extended protocol (Parse/Bind/Execute)."""
    n, failures = 0, []
    for cid, sql, cls, guard, note in policy_cases.CASES:
        if not single_statement(sql) or "$1" in sql:
            continue
        norun = (note or "").startswith("norun:")
        for sc in ("read", "write"):
            check_case(IDENT[sc], sql, RANK[sc] >= RANK[cls], norun, True, "%s [%s ext] %r" % (cid, sc, sql[:80]),
                       failures)
            n += 1
    report(failures, n)


def test_guardrails():
    """An admin-scope policy with every guardrail: exactly the guardrail cases are denied, naming the guardrail."""
    n, failures = 0, []
    for cid, sql, cls, guard, note in policy_cases.CASES:
        norun = (note or "").startswith("norun:")
        if guard is not None or cls == "never":
            guard = guard or "parser_safety"
            before = fp()
            err = run("gr-agent", sql)
            if not refused(err) or guard not in str(err):
                failures.append("%s: guardrail %s did not refuse %r: %r" % (cid, guard, sql, err))
            elif fp() != before:
                failures.append("%s: denied by %s but the database changed" % (cid, guard))
        else:
            check_case("gr-agent", sql, True, norun, False, "%s [guarded]" % cid, failures)
        n += 1
    report(failures, n)


def test_table_allow_list():
    """TABLE_CASES under a read policy with tables: [public.invoices, public.customers]."""
    n, failures = 0, []
    for cid, sql, allowed, note in policy_cases.TABLE_CASES:
        norun = (note or "").startswith("norun:")
        check_case("t-agent", sql, allowed, norun, False, "%s [tables] %r" % (cid, sql[:80]), failures)
        n += 1
    assert n >= 30, n
    report(failures, n)


def expect_denied(ident, sql, code="42501", contains=None):
    c = connect(ident)
    try:
        try:
            psycopg.ClientCursor(c).execute(sql)
        except psycopg.Error as e:
            assert e.sqlstate == code, (sql, e.sqlstate, str(e))
            assert str(e).startswith("pgmoat:"), str(e)
            if contains:
                full = "%s %s %s" % (e.diag.message_primary, e.diag.message_detail, e.diag.message_hint)
                assert contains in full, (contains, full)
            return e
        raise AssertionError("not denied: %r" % sql)
    finally:
        c.close()


def test_denial_wording():
    """42501 with DETAIL naming the rule and a HINT with the request command."""
    e = expect_denied("r-agent", "DELETE FROM public.invoices WHERE id = 1")
    assert "p-read" in e.diag.message_detail, e.diag.message_detail
    assert "pgmoat request main --scope write" in (e.diag.message_hint or ""), e.diag.message_hint
    e = expect_denied("nobody", "SELECT 1")
    assert "no policy" in e.diag.message_primary, e.diag.message_primary
    e = expect_denied("gr-agent", "DELETE FROM public.audit_log")
    assert "no_delete_without_where" in e.diag.message_primary
    e = expect_denied("r-agent", "SELEC 1", code="42601")
    assert "parse" in e.diag.message_detail


def test_whole_message_denied_before_any_runs():
    """One denial in a multi-statement Query: nothing of it runs (the earlier INSERT included)."""
    before = fp()
    c = connect("w-agent")
    try:
        try:
            psycopg.ClientCursor(c).execute("INSERT INTO public.audit_log(note) VALUES ('x'); DROP TABLE public.secrets")
            raise AssertionError("not denied")
        except psycopg.errors.InsufficientPrivilege as e:
            assert "statement 2 of 2" in e.diag.message_detail, e.diag.message_detail
        assert c.execute("SELECT 1").fetchone() == (1,)
    finally:
        c.close()
    assert fp() == before


def test_session_usable_and_txn_state_after_denial():
    """A denial in a transaction block aborts it like any ERROR; the session stays usable."""
    c = connect("r-agent")
    try:
        c.execute("BEGIN")
        assert c.execute("SELECT count(*) FROM public.invoices").fetchone()[0] >= 0
        try:
            c.execute("UPDATE public.invoices SET amount = 0 WHERE id = 1")
            raise AssertionError("not denied")
        except psycopg.errors.InsufficientPrivilege:
            pass
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
        try:
            c.execute("SELECT 1")
            raise AssertionError("aborted transaction ran a statement")
        except psycopg.errors.InFailedSqlTransaction:
            pass
        c.execute("ROLLBACK")
        assert c.execute("SELECT 2").fetchone() == (2,)
    finally:
        c.close()


def raw_session(ident):
    gw = S["gw"]
    return RawSession(gw.port, ident, S["tokens"][ident], dbname="main", tls=False)


def msg(t, body=b""):
    return t + struct.pack("!I", len(body) + 4) + body


def cstr(s):
    return s.encode() + b"\0"


def read_until_ready(rs):
    """Messages up to ReadyForQuery, without ParameterStatus/Notice (asynchronous)."""
    out = []
    while True:
        t, body = read_msg(rs.sock)
        if t in (b"S", b"N"):
            continue
        out.append((t, body))
        if t == b"Z":
            return out


def test_extended_protocol_sync_rules():
    """Parse of a denied statement: ErrorResponse, the rest skipped to Sync, ReadyForQuery; a later
    Bind to that name is refused again; a pipelined allowed group after it runs."""
    rs = raw_session("r-agent")
    try:
        s = rs.sock
        s.sendall(msg(b"P", cstr("bad") + cstr("DELETE FROM public.invoices") + b"\0\0") +
                  msg(b"B", cstr("") + cstr("bad") + b"\0\0\0\0\0\0") + msg(b"E", cstr("") + b"\0\0\0\0") +
                  msg(b"S") +
                  msg(b"P", cstr("ok") + cstr("SELECT 41 + 1") + b"\0\0") +
                  msg(b"B", cstr("") + cstr("ok") + b"\0\0\0\0\0\0") + msg(b"E", cstr("") + b"\0\0\0\0") +
                  msg(b"S") +
                  msg(b"B", cstr("") + cstr("bad") + b"\0\0\0\0\0\0") + msg(b"E", cstr("") + b"\0\0\0\0") +
                  msg(b"S"))
        g1 = read_until_ready(rs)
        assert [t for t, _ in g1] == [b"E", b"Z"], g1
        f = error_fields(g1[0][1])
        assert f["C"] == "42501" and f["M"].startswith("pgmoat:"), f
        g2 = read_until_ready(rs)
        assert [t for t, _ in g2] == [b"1", b"2", b"D", b"C", b"Z"], g2
        assert b"42" in g2[2][1]
        g3 = read_until_ready(rs)
        assert [t for t, _ in g3] == [b"E", b"Z"], g3
        # "bad" was never prepared (its Parse never reached the server): as PostgreSQL would say.
        assert error_fields(g3[0][1])["C"] == "26000", error_fields(g3[0][1])
    finally:
        rs.close()


def test_query_inside_extended_sequence_refused():
    """A simple Query between Parse/Bind and their Sync: ERROR 08P01 inside the sequence, which the server
    then skips to Sync; every answer still reaches its own message."""
    rs = raw_session("a-agent")
    try:
        rs.sock.sendall(msg(b"P", cstr("") + cstr("SELECT 7") + b"\0\0") + msg(b"B", cstr("") + cstr("") + b"\0" * 6) +
                        msg(b"Q", cstr("SELECT 8")) + msg(b"E", cstr("") + b"\0\0\0\0") + msg(b"S") +
                        msg(b"Q", cstr("SELECT 9")))
        g1 = read_until_ready(rs)
        assert [t for t, _ in g1] == [b"1", b"2", b"E", b"Z"], g1
        f = error_fields(g1[2][1])
        assert f["C"] == "08P01" and "send Sync first" in f["M"], f
        g2 = read_until_ready(rs)
        assert [t for t, _ in g2] == [b"T", b"D", b"C", b"Z"] and b"9" in g2[1][1], g2
    finally:
        rs.close()


def test_red_team_regressions():
    """Bypasses a review found, each closed: field-selection calls, a CTE named like a DML target,
    a client statement named like the gateway's stand-in, a huge set-operation chain."""
    before = fp()
    expect_denied("r-agent", "SELECT (1::bigint).pg_advisory_lock")
    expect_denied("r-agent", "SELECT (pg_backend_pid()).pg_terminate_backend")
    expect_denied("t-agent", "SELECT ('SELECT 1').ts_stat")
    expect_denied("w-agent", "SELECT i.purge FROM invoices i")
    expect_denied("wt-agent", "WITH secrets AS (SELECT 1) UPDATE secrets SET value = value RETURNING *")
    expect_denied("wt-agent", "WITH secrets AS (SELECT 1) DELETE FROM secrets WHERE id = 99")
    c = connect("w-agent")
    try:
        # qualified columns are still just columns
        assert c.execute("SELECT i.id, c.name FROM invoices i JOIN customers c ON c.id = i.customer_id "
                         "ORDER BY i.id LIMIT 1").fetchone()
    finally:
        c.close()
    rs = raw_session("r-agent")
    try:
        rs.sock.sendall(msg(b"P", cstr("pgmoat.denied") + cstr("RESET ALL") + b"\0\0") + msg(b"S"))
        g = read_until_ready(rs)
        assert [t for t, _ in g] == [b"E", b"Z"] and error_fields(g[0][1])["C"] == "42501", g
        rows, err = rs.query("SHOW default_transaction_read_only")
        assert rows == [["on"]], (rows, err)
        # 200,000 UNION ALLs (3.8 MB): refused, the gateway lives on
        rows, err = rs.query("SELECT 1" + " UNION ALL SELECT 1" * 200000)
        assert err and err["C"] == "42501", err
        rows, err = rs.query("SELECT 5")
        assert rows == [["5"]], (rows, err)
    finally:
        rs.close()
    assert fp() == before


def test_copy_from_stdin_with_pipelined_sync():
    """COPY FROM STDIN and a Sync in one write: the server ignores that Sync in COPY mode, and the
    gateway waits to see whether COPY started before reading on, so answers keep their owners."""
    rs = raw_session("w-agent")
    try:
        rs.sock.sendall(msg(b"Q", cstr("COPY scratch (id, v) FROM STDIN")) + msg(b"S") +
                        msg(b"d", b"9001\tpiped\n") + msg(b"c") + msg(b"Q", cstr("SELECT 42")))
        out = []
        while len([t for t, _ in out if t == b"Z"]) < 2:
            t, body = read_msg(rs.sock)
            if t not in (b"S", b"N"):
                out.append((t, body))
        types = [t for t, _ in out]
        assert types == [b"G", b"C", b"Z", b"T", b"D", b"C", b"Z"], types
        assert b"42" in out[4][1]
        rows, err = rs.query("DELETE FROM scratch WHERE id = 9001")
        assert err is None, err
    finally:
        rs.close()


def test_copy_error_with_pipelined_sync_keeps_owners():
    """A failing COPY row with a Sync and more queries behind it: the Sync is not forwarded (PostgreSQL
    ignores it during COPY), so a client row can never pass for a catalog answer."""
    before = fp()
    rs = raw_session("w-agent")
    try:
        rs.sock.sendall(msg(b"Q", cstr("COPY scratch (id, v) FROM STDIN")))
        t, _ = read_msg(rs.sock)
        while t in (b"S", b"N"):
            t, _ = read_msg(rs.sock)
        assert t == b"G", t
        rs.sock.sendall(msg(b"d", b"notanint\tz\n") + msg(b"S") +
                        msg(b"Q", cstr("SELECT 'f', 'public.bump', 'true', 'x'")) + msg(b"Q", cstr("SELECT public.bump()")))
        g1 = read_until_ready(rs)
        assert [t for t, _ in g1] == [b"E", b"Z"] and error_fields(g1[0][1])["C"] == "22P02", g1
        g2 = read_until_ready(rs)
        assert [t for t, _ in g2] == [b"T", b"D", b"C", b"Z"], g2
        g3 = read_until_ready(rs)
        assert [t for t, _ in g3] == [b"E", b"Z"] and error_fields(g3[0][1])["C"] == "42501", g3
    finally:
        rs.close()
    assert fp() == before


def test_prepared_names_follow_the_server():
    """PREPARE then DEALLOCATE in one message, Close then Parse: the gateway's idea of a name is the
    server's, in order."""
    rs = raw_session("r-agent")
    try:
        rows, err = rs.query("PREPARE pn AS SELECT 1; DEALLOCATE pn")
        assert err is None, err
        rs.sock.sendall(msg(b"P", cstr("pn") + cstr("SELECT 2") + b"\0\0") + msg(b"B", cstr("") + cstr("pn") + b"\0" * 6) +
                        msg(b"E", cstr("") + b"\0\0\0\0") + msg(b"C", b"S" + cstr("pn")) +
                        msg(b"P", cstr("pn") + cstr("SELECT 3") + b"\0\0") + msg(b"B", cstr("") + cstr("pn") + b"\0" * 6) +
                        msg(b"E", cstr("") + b"\0\0\0\0") + msg(b"S"))
        g = read_until_ready(rs)
        assert [t for t, _ in g] == [b"1", b"2", b"D", b"C", b"3", b"1", b"2", b"D", b"C", b"Z"], g
        assert g[2][1].endswith(b"2") and g[7][1].endswith(b"3"), g
    finally:
        rs.close()


def test_startup_search_path_list():
    """options=-c search_path=other,public is two schemas, as PostgreSQL reads it at startup."""
    gw = S["gw"]
    c = psycopg.connect(gw.dsn("r-agent", S["tokens"]["r-agent"]), autocommit=True,
                        options="-c search_path=other,public")
    try:
        assert c.execute("SHOW search_path").fetchone()[0].replace(" ", "") == "other,public"
        assert c.execute("SELECT count(*) FROM customers").fetchone()[0] >= 1
    finally:
        c.close()


def test_function_call_denied_below_admin():
    """The fast-path FunctionCall names a function by OID only: admin scope."""
    rs = raw_session("r-agent")
    try:
        # FunctionCall of pg_catalog.now() (OID 1299), no arguments, text result.
        rs.sock.sendall(msg(b"F", struct.pack("!IhhhH", 1299, 0, 0, 0, 0)))
        out = read_until_ready(rs)
        assert out[0][0] == b"E" and error_fields(out[0][1])["C"] == "42501", out
    finally:
        rs.close()


def test_read_session_is_read_only_upstream():
    """A read session runs with default_transaction_read_only = on: a function declared STABLE that
    writes is stopped by PostgreSQL itself; turning read-only off is denied, also after DISCARD ALL."""
    c = connect("r-agent")
    try:
        assert c.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        for sql in ("SET default_transaction_read_only = off", "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
                    "BEGIN READ WRITE", "RESET default_transaction_read_only",
                    "SELECT set_config('default_transaction_read_only', 'off', false)"):
            try:
                psycopg.ClientCursor(c).execute(sql)
                raise AssertionError("not denied: " + sql)
            except psycopg.errors.InsufficientPrivilege:
                pass
        psycopg.ClientCursor(c).execute("DISCARD ALL")
        assert c.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        try:
            psycopg.ClientCursor(c).execute("RESET ALL; SELECT 1")
            raise AssertionError("reset followed by more in one message was not denied")
        except psycopg.errors.InsufficientPrivilege:
            pass
    finally:
        c.close()


def test_user_function_volatility_from_catalog():
    """STABLE/IMMUTABLE user functions are reads; a VOLATILE one is a write (looked up upstream)."""
    before = fp()
    c = connect("r-agent")
    try:
        assert c.execute("SELECT public.invoice_total(1) IS NOT NULL OR true").fetchone() == (True,)
        try:
            c.execute("SELECT public.bump()")
            raise AssertionError("volatile function allowed for read")
        except psycopg.errors.InsufficientPrivilege as e:
            assert "admin" in str(e), str(e)
        # The answer is cached for the session: the same again, and a prepared use.
        assert c.execute("SELECT public.invoice_total(%s) IS NOT NULL OR true", (2,), prepare=True).fetchone() == (True,)
    finally:
        c.close()
    assert fp() == before
    c = connect("a-agent")
    try:
        c.execute("BEGIN")
        c.execute("SELECT public.bump()")
        c.execute("ROLLBACK")
    finally:
        c.close()


def test_lookup_at_parse():
    """A function first met in a Parse (extended protocol) is looked up there, not refused."""
    c = connect("r-agent")
    try:
        assert c.execute("SELECT initcap(%s)", ("abc",)).fetchone() == ("Abc",)
        assert c.execute("SELECT public.add_tax(%s) IS NOT NULL", (1,)).fetchone() == (True,)
    finally:
        c.close()


def test_search_path_change_forgets_catalog_facts():
    """A function learnt as STABLE is looked up again after SET search_path: the name may now mean a
    volatile namesake. RESET ALL brings the startup search_path (and the shared facts) back."""
    c = connect("r-agent")
    try:
        cur = psycopg.ClientCursor(c)
        cur.execute("SELECT invoice_total(1) IS NULL OR true")
        cur.execute("SET search_path = other, public")
        try:
            cur.execute("SELECT invoice_total(1) IS NULL OR true")
            raise AssertionError("the volatile other.invoice_total passed as a read")
        except psycopg.errors.InsufficientPrivilege as e:
            assert "admin" in str(e), str(e)
        cur.execute("RESET ALL")
        cur.execute("SELECT invoice_total(1) IS NULL OR true")
    finally:
        c.close()


def test_lookup_in_failed_transaction():
    """A catalog lookup inside an aborted transaction fails like any statement would (25P02); nothing
    is cached from it, and after ROLLBACK the same statement is looked up and runs."""
    c = connect("r-agent")
    try:
        c.execute("BEGIN")
        try:
            c.execute("SELECT 1/0")
        except psycopg.errors.DivisionByZero:
            pass
        try:
            c.execute("SELECT reverse('abc')")
            raise AssertionError("ran in an aborted transaction")
        except psycopg.errors.InFailedSqlTransaction:
            pass
        c.execute("ROLLBACK")
        assert c.execute("SELECT reverse('abc') IS NOT NULL").fetchone() == (True,)
    finally:
        c.close()


def test_windows_with_injected_now():
    """PGMOAT_TEST_NOW = Wed 2026-11-25 12:00 UTC (13:00 in Berlin): the day window is open, the night one closed."""
    c = connect("day-agent")
    try:
        assert c.execute("SELECT 1").fetchone() == (1,)
    finally:
        c.close()
    e = expect_denied("n-agent", "SELECT 1", contains="Mon-Fri 22:00-06:00 Europe/Berlin")
    assert "window" in e.diag.message_primary


def test_max_rows_cuts_with_notice():
    c = connect("gr-agent")
    notices = []
    c.add_notice_handler(lambda d: notices.append(d.message_primary))
    try:
        rows = c.execute("SELECT g FROM generate_series(1, 100) g").fetchall()
        assert len(rows) == 5, len(rows)
        assert any("max_rows" in n for n in notices), notices
        # The session goes on normally, and a small result is whole.
        assert c.execute("SELECT g FROM generate_series(1, 3) g").fetchall() == [(1,), (2,), (3,)]
        with c.cursor().copy("COPY (SELECT g FROM generate_series(1, 50) g) TO STDOUT") as cp:
            data = b"".join(bytes(b) for b in cp)
        assert data.count(b"\n") == 5, data
    finally:
        c.close()


def test_parse_cache_metrics():
    """The parse cache counts hits: the same text twice is one miss and one hit at least."""
    c = connect("r-agent")
    try:
        for _ in range(3):
            c.execute("SELECT 'cache-probe-7'")
    finally:
        c.close()
    import urllib.request
    text = urllib.request.urlopen(S["gw"].url + "/metrics", timeout=10).read().decode()
    vals = dict(line.split(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    assert int(vals["pgmoat_parse_cache_hits_total"]) >= 2, text
    assert int(vals["pgmoat_policy_decisions_total"]) >= 3, text


if __name__ == "__main__":
    main(globals())
