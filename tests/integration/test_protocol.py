#!/usr/bin/python3
"""The whole PostgreSQL protocol through the gateway over TLS, with real clients.

libpq pipeline mode (tests/clients/pipeline.c), psycopg 3 (transactions, prepared
statements, server-side cursors, binary results, errors, COPY of 1,000,000 rows,
LISTEN/NOTIFY, cancel, a 100 MB bytea, notices, multi-statement queries), back-pressure
without busy-looping, and pgbench (-M simple/extended/prepared, TPC-B-like, -C).
"""
import hashlib
import os
import re
import select
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import harness  # noqa: E402
from harness import Certs, Gateway, Postgres  # noqa: E402

import psycopg  # noqa: E402
from psycopg import errors, pq  # noqa: E402

ctx = {}


def setup_module():
    pg = Postgres().start().setup_roles()
    certs = Certs()
    gw = Gateway(pg, tls=certs).start()
    ctx.update(pg=pg, certs=certs, gw=gw)
    ctx["agent"] = gw.agent("agent-1")
    ctx["agent2"] = gw.agent("agent-2")


def gw_conn(agent="agent", **kw):
    """A psycopg connection through the gateway (TLS required)."""
    ident, token = ctx[agent]
    c = psycopg.connect(ctx["gw"].dsn(ident, token), connect_timeout=10, **kw)
    assert c.pgconn.ssl_in_use, "the connection to the gateway is not TLS"
    return c


def direct_conn(**kw):
    """A psycopg connection straight to PostgreSQL (superuser over the unix socket)."""
    pg = ctx["pg"]
    return psycopg.connect(host=pg.sock, port=pg.port, user=pg.SUPERUSER, dbname="app", **kw)


def check_usable(conn):
    status = conn.info.transaction_status
    assert status == pq.TransactionStatus.IDLE, status
    assert conn.execute("SELECT 'still usable'").fetchone() == ("still usable",)
    if not conn.autocommit:
        conn.rollback()


# ---- 1. libpq pipeline mode ----

def pipeline_binary():
    path = os.path.join(harness.BUILD, "pipeline")
    src = os.path.join(harness.ROOT, "tests", "clients", "pipeline.c")
    if not os.path.exists(path) or os.path.getmtime(path) < os.path.getmtime(src):
        args = ["make", "-s", os.path.relpath(path, harness.ROOT)]
        if os.path.normpath(harness.BUILD).endswith(os.path.join("build", "san")):
            args.append("SANITIZE=1")
        subprocess.run(args, cwd=harness.ROOT, check=True, capture_output=True, timeout=120)
    return path


def test_libpq_pipeline_binary():
    ident, token = ctx["agent"]
    r = subprocess.run([pipeline_binary(), ctx["gw"].dsn(ident, token)], capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 0, "pipeline client exited %d:\n%s" % (r.returncode, out[-4000:])
    m = re.search(r"pipeline: (\d+) checks, 0 failed", out)
    assert m and int(m.group(1)) > 50, out[-4000:]
    assert "FAIL" not in out, out[-4000:]


# ---- 2. psycopg 3 ----

def test_psycopg_transactions():
    with gw_conn() as c, direct_conn(autocommit=True) as d:
        c.execute("DROP TABLE IF EXISTS tx_t")
        c.execute("CREATE TABLE tx_t (id int PRIMARY KEY, v text)")
        c.commit()
        assert c.info.transaction_status == pq.TransactionStatus.IDLE

        # commit: visible to another connection only after it
        c.execute("INSERT INTO tx_t VALUES (1, 'committed')")
        assert c.info.transaction_status == pq.TransactionStatus.INTRANS
        assert d.execute("SELECT count(*) FROM tx_t").fetchone()[0] == 0
        c.commit()
        assert c.info.transaction_status == pq.TransactionStatus.IDLE
        assert d.execute("SELECT v FROM tx_t WHERE id = 1").fetchone() == ("committed",)

        # rollback
        c.execute("INSERT INTO tx_t VALUES (2, 'rolled back')")
        c.rollback()
        assert d.execute("SELECT count(*) FROM tx_t WHERE id = 2").fetchone()[0] == 0

        # savepoints through psycopg's nested transaction blocks
        c.autocommit = True
        with c.transaction():
            c.execute("INSERT INTO tx_t VALUES (3, 'outer')")
            with c.transaction() as inner:
                c.execute("INSERT INTO tx_t VALUES (4, 'inner, rolled back')")
                raise psycopg.Rollback(inner)
            with c.transaction():
                c.execute("INSERT INTO tx_t VALUES (5, 'inner, released')")
            try:
                with c.transaction():
                    c.execute("INSERT INTO tx_t VALUES (1, 'duplicate')")
            except errors.UniqueViolation:
                pass
            else:
                raise AssertionError("duplicate key accepted")
            assert c.info.transaction_status == pq.TransactionStatus.INTRANS
        assert [r[0] for r in d.execute("SELECT id FROM tx_t ORDER BY id")] == [1, 3, 5]

        # explicit SQL savepoints after an error
        c.execute("BEGIN")
        c.execute("INSERT INTO tx_t VALUES (6, 'six')")
        c.execute("SAVEPOINT s1")
        try:
            c.execute("INSERT INTO tx_t VALUES (6, 'dup')")
            raise AssertionError("duplicate key accepted")
        except errors.UniqueViolation:
            pass
        assert c.info.transaction_status == pq.TransactionStatus.INERROR
        c.execute("ROLLBACK TO SAVEPOINT s1")
        assert c.info.transaction_status == pq.TransactionStatus.INTRANS
        c.execute("INSERT INTO tx_t VALUES (7, 'seven')")
        c.execute("RELEASE SAVEPOINT s1")
        c.execute("COMMIT")
        assert c.info.transaction_status == pq.TransactionStatus.IDLE
        assert [r[0] for r in d.execute("SELECT id FROM tx_t ORDER BY id")] == [1, 3, 5, 6, 7]

        # isolation level and read-only transactions
        c.autocommit = False
        c.isolation_level = psycopg.IsolationLevel.SERIALIZABLE
        c.read_only = True
        assert c.execute("SHOW transaction_isolation").fetchone() == ("serializable",)
        try:
            c.execute("INSERT INTO tx_t VALUES (8, 'read only')")
            raise AssertionError("write in a read-only transaction accepted")
        except errors.ReadOnlySqlTransaction:
            pass
        c.rollback()
        c.read_only = None
        c.isolation_level = None
        c.execute("DROP TABLE tx_t")
        c.commit()
        check_usable(c)


def test_psycopg_prepared_statements():
    with gw_conn(autocommit=True) as c:
        for i in range(20):
            assert c.execute("SELECT %s::int * 2, %s::text", [i, "p%d" % i], prepare=True).fetchone() == (2 * i, "p%d" % i)
        names = c.execute("SELECT name, statement FROM pg_prepared_statements").fetchall()
        assert any("$1::int * 2" in stmt for _, stmt in names), names
        # automatic preparation after prepare_threshold executions
        c.prepare_threshold = 2
        for i in range(10):
            assert c.execute("SELECT %s::int + 1000", [i]).fetchone() == (i + 1000,)
        stmts = [s for _, s in c.execute("SELECT name, statement FROM pg_prepared_statements")]
        assert any("$1::int + 1000" in s for s in stmts), stmts
        # executemany (psycopg pipelines it) into a prepared insert
        c.execute("DROP TABLE IF EXISTS prep_t")
        c.execute("CREATE TABLE prep_t (id int, v text)")
        with c.cursor() as cur:
            cur.executemany("INSERT INTO prep_t VALUES (%s, %s)", [(i, "v%d" % i) for i in range(1000)])
        assert c.execute("SELECT count(*), sum(id) FROM prep_t").fetchone() == (1000, sum(range(1000)))
        # a prepared statement keeps working after an error in another statement
        try:
            c.execute("SELECT 1 / %s::int", [0], prepare=True)
            raise AssertionError("division by zero accepted")
        except errors.DivisionByZero:
            pass
        assert c.execute("SELECT %s::int * 2, %s::text", [21, "x"], prepare=True).fetchone() == (42, "x")
        # DEALLOCATE ALL / DISCARD ALL from the client: psycopg re-prepares
        c.execute("DEALLOCATE ALL")
        c._prepared.clear()
        assert c.execute("SELECT %s::int * 2, %s::text", [5, "y"], prepare=True).fetchone() == (10, "y")
        c.execute("DROP TABLE prep_t")
        check_usable(c)


def test_psycopg_server_side_cursor():
    with gw_conn() as c:
        with c.cursor("big_cursor") as cur:
            cur.itersize = 5000
            cur.execute("SELECT g, md5(g::text) FROM generate_series(1, 200000) g ORDER BY g")
            assert c.execute("SELECT name FROM pg_cursors").fetchall() == [("big_cursor",)]
            n = total = 0
            h = hashlib.md5()
            for gid, md in cur:
                n += 1
                total += gid
                h.update(md.encode())
            assert (n, total) == (200000, 200000 * 200001 // 2)
        want = hashlib.md5("".join(hashlib.md5(str(g).encode()).hexdigest() for g in range(1, 200001)).encode())
        assert h.hexdigest() == want.hexdigest()
        c.commit()
        # scrollable cursor with fetchmany / scroll
        with c.cursor("scroll_cursor", scrollable=True) as cur:
            cur.execute("SELECT g FROM generate_series(1, 1000) g")
            assert [r[0] for r in cur.fetchmany(3)] == [1, 2, 3]
            cur.scroll(500, mode="absolute")
            assert cur.fetchone() == (501,)
            cur.scroll(-101)
            assert cur.fetchone() == (401,)
        c.commit()
        # WITH HOLD cursor survives the commit
        with c.cursor("hold_cursor", withhold=True, binary=True) as cur:
            cur.execute("SELECT g, g::text FROM generate_series(1, 3000) g")
            c.commit()
            rows = cur.fetchall()
            assert len(rows) == 3000 and rows[-1] == (3000, "3000")
        c.commit()
        check_usable(c)


def test_psycopg_binary_results():
    import datetime
    import decimal
    import uuid
    with gw_conn(autocommit=True) as c:
        cur = c.cursor(binary=True)
        cur.execute("""SELECT 1::int2, 2::int4, 3::int8, 1.5::float4, 2.25::float8, 12.345::numeric,
                              'tëxt', '\\x00ff10'::bytea, true, '2024-01-02 03:04:05.678+00'::timestamptz,
                              'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, '{"a": [1, 2]}'::jsonb,
                              ARRAY[1, 2, NULL]::int[], '2024-02-29'::date, NULL::text,
                              '1 day 02:03:04'::interval, ARRAY['a', 'b c']::text[]""")
        row = cur.fetchone()
        pgres = cur.pgresult
        assert all(pgres.fformat(i) == 1 for i in range(pgres.nfields)), "result not in binary format"
        assert row == (1, 2, 3, 1.5, 2.25, decimal.Decimal("12.345"), "tëxt", b"\x00\xff\x10", True,
                       datetime.datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=datetime.timezone.utc)
                       .astimezone(row[9].tzinfo),
                       uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), {"a": [1, 2]}, [1, 2, None],
                       datetime.date(2024, 2, 29), None, datetime.timedelta(days=1, seconds=7384),
                       ["a", "b c"]), row
        # binary parameters and a large binary result
        cur.execute("SELECT %b::bytea, %b::int8, %b::text", [bytes(range(256)) * 4, 2 ** 40, "binär"])
        assert cur.fetchone() == (bytes(range(256)) * 4, 2 ** 40, "binär")
        cur.execute("SELECT g, g::float8 / 3, repeat('z', g % 100) FROM generate_series(1, 100000) g")
        n = s = ln = 0
        for g, f, z in cur:
            n += 1
            s += g
            ln += len(z)
            assert abs(f - g / 3) < 1e-9
        assert (n, s, ln) == (100000, 100000 * 100001 // 2, sum(g % 100 for g in range(1, 100001)))
        # text results on the same connection still text
        tcur = c.cursor()
        tcur.execute("SELECT 1::int4")
        assert tcur.pgresult.fformat(0) == 0 and tcur.fetchone() == (1,)
        check_usable(c)


def test_psycopg_errors_leave_connection_usable():
    with gw_conn() as c:
        # in a transaction block: INERROR, then every statement fails, then rollback works
        assert c.execute("SELECT 1").fetchone() == (1,)
        assert c.info.transaction_status == pq.TransactionStatus.INTRANS
        try:
            c.execute("SELECT * FROM no_such_table")
            raise AssertionError("query on a missing table succeeded")
        except errors.UndefinedTable as e:
            assert e.sqlstate == "42P01"
            assert e.diag.severity == "ERROR"
        assert c.info.transaction_status == pq.TransactionStatus.INERROR
        try:
            c.execute("SELECT 1")
            raise AssertionError("statement accepted in an aborted transaction")
        except errors.InFailedSqlTransaction as e:
            assert e.sqlstate == "25P02"
        assert c.info.transaction_status == pq.TransactionStatus.INERROR
        c.rollback()
        assert c.info.transaction_status == pq.TransactionStatus.IDLE
        check_usable(c)

        # autocommit: errors in simple and extended protocol, syntax errors, runtime errors
        c.autocommit = True
        for sql, params, cls in (("SELEC 1", None, errors.SyntaxError),
                                 ("SELECT 1 / %s::int", [0], errors.DivisionByZero),
                                 ("SELECT %s::int", ["not a number"], errors.InvalidTextRepresentation),
                                 ("SELECT 1 / 0", None, errors.DivisionByZero),
                                 ("SELECT repeat('x', 100000)::int", None, errors.InvalidTextRepresentation)):
            try:
                c.execute(sql, params)
                raise AssertionError("%s succeeded" % sql)
            except cls:
                pass
            assert c.info.transaction_status == pq.TransactionStatus.IDLE
            assert c.execute("SELECT %s::text", ["after"]).fetchone() == ("after",)

        # an error inside a psycopg pipeline (extended protocol, several messages before a Sync)
        c.execute("DROP TABLE IF EXISTS err_t")
        c.execute("CREATE TABLE err_t (id int PRIMARY KEY)")
        try:
            with c.pipeline():
                c.execute("INSERT INTO err_t VALUES (%s)", [1])
                c.execute("INSERT INTO err_t VALUES (%s)", [1])
                c.execute("INSERT INTO err_t VALUES (%s)", [2])
            raise AssertionError("pipeline with a duplicate key succeeded")
        except errors.UniqueViolation:
            pass
        assert c.info.transaction_status == pq.TransactionStatus.IDLE
        # one Sync for the whole batch: its implicit transaction is rolled back (as directly on PostgreSQL)
        assert c.execute("SELECT count(*) FROM err_t").fetchone() == (0,)
        with c.pipeline() as p:
            c.execute("INSERT INTO err_t VALUES (%s)", [1])
            p.sync()
            try:
                c.execute("INSERT INTO err_t VALUES (%s)", [1])
                p.sync()
                raise AssertionError("duplicate key accepted")
            except errors.UniqueViolation:
                pass
        assert c.execute("SELECT array_agg(id ORDER BY id) FROM err_t").fetchone() == ([1],)
        with c.pipeline():
            cur1 = c.execute("INSERT INTO err_t VALUES (%s) RETURNING id", [3])
            cur2 = c.execute("SELECT count(*) FROM err_t")
        assert cur1.fetchone() == (3,) and cur2.fetchone() == (2,)
        c.execute("DROP TABLE err_t")
        check_usable(c)


COPY_ROWS = 1000000


def test_psycopg_copy_million_rows():
    expected = hashlib.md5()
    chunk = []
    total_bytes = 0
    with gw_conn(autocommit=True) as c, direct_conn(autocommit=True) as d:
        c.execute("DROP TABLE IF EXISTS copy_t")
        c.execute("CREATE TABLE copy_t (id int8, name text, n int4)")
        t0 = time.time()
        with c.cursor() as cur:
            with cur.copy("COPY copy_t (id, name, n) FROM STDIN") as cp:
                for i in range(1, COPY_ROWS + 1):
                    if i % 1000 == 0:
                        name = "tab\\there é\\\\ %d" % i  # escapes round-trip unchanged
                    elif i % 777 == 0:
                        name = "\\N"
                    else:
                        name = "row-%d" % i
                    chunk.append("%d\t%s\t%d\n" % (i, name, (i * 7919) % 100003 - 50000))
                    if len(chunk) == 20000:
                        data = "".join(chunk).encode()
                        expected.update(data)
                        total_bytes += len(data)
                        cp.write(data)
                        chunk = []
                if chunk:
                    data = "".join(chunk).encode()
                    expected.update(data)
                    total_bytes += len(data)
                    cp.write(data)
            assert cur.rowcount == COPY_ROWS, cur.rowcount
        t_in = time.time() - t0

        agg_sql = ("SELECT count(*), sum(id), sum(n), count(name), "
                   "md5(string_agg(coalesce(name, '<null>'), ',' ORDER BY id)) FROM copy_t")
        via_gw = c.execute(agg_sql).fetchone()
        direct = d.execute(agg_sql).fetchone()
        assert via_gw == direct, (via_gw, direct)
        assert via_gw[0] == COPY_ROWS and via_gw[1] == COPY_ROWS * (COPY_ROWS + 1) // 2
        assert via_gw[3] == COPY_ROWS - len([i for i in range(1, COPY_ROWS + 1) if i % 777 == 0 and i % 1000])

        def copy_out(conn):
            h = hashlib.md5()
            n = 0
            with conn.cursor() as cur:
                with cur.copy("COPY (SELECT id, name, n FROM copy_t ORDER BY id) TO STDOUT") as cp:
                    for block in cp:
                        h.update(block)
                        n += len(block)
            return h.hexdigest(), n

        t0 = time.time()
        gw_md5, gw_bytes = copy_out(c)
        t_out = time.time() - t0
        direct_md5, direct_bytes = copy_out(d)
        assert (gw_md5, gw_bytes) == (expected.hexdigest(), total_bytes), ((gw_md5, gw_bytes), expected.hexdigest(),
                                                                           total_bytes)
        assert (direct_md5, direct_bytes) == (gw_md5, gw_bytes)

        # COPY TO STDOUT in binary format, and a COPY FROM that fails midway leaves the session usable
        with c.cursor() as cur:
            with cur.copy("COPY (SELECT id, n FROM copy_t WHERE id <= 50000 ORDER BY id) TO STDOUT (FORMAT binary)") as cp:
                cp.set_types(["int8", "int4"])
                rows = list(cp.rows())
        assert len(rows) == 50000 and rows[-1] == (50000, (50000 * 7919) % 100003 - 50000)
        try:
            with c.cursor() as cur:
                with cur.copy("COPY copy_t (id, name, n) FROM STDIN") as cp:
                    cp.write(b"1\ta\t1\n2\tb\tnot-a-number\n3\tc\t3\n")
            raise AssertionError("bad COPY data accepted")
        except errors.InvalidTextRepresentation:
            pass
        assert c.execute("SELECT count(*) FROM copy_t").fetchone() == (COPY_ROWS,)
        c.execute("DROP TABLE copy_t")
        check_usable(c)
    print("     copy in %.1fs, out %.1fs, %d MB each way" % (t_in, t_out, total_bytes >> 20))


def test_psycopg_listen_notify():
    with gw_conn(autocommit=True) as listener, direct_conn(autocommit=True) as d, \
            gw_conn("agent2", autocommit=True) as sender:
        listener.execute("LISTEN chan_a")
        listener.execute('LISTEN "Chan B"')
        got = []
        done = threading.Event()

        def listen():
            for n in listener.notifies():
                got.append(n)
                if len(got) == 103:
                    done.set()
                    return

        th = threading.Thread(target=listen, daemon=True)
        th.start()
        time.sleep(0.2)
        d.execute("NOTIFY chan_a, 'from direct'")
        d.execute("NOTIFY chan_unlistened, 'nobody hears this'")
        sender.execute("SELECT pg_notify('Chan B', %s)", ["from the gateway: ünïcode ✓"])
        with sender.transaction():
            for i in range(100):
                sender.execute("SELECT pg_notify('chan_a', %s)", ["tx-%d" % i])
            sender.execute("NOTIFY chan_a, '%s'" % ("p" * 7000))
        assert done.wait(10), "only %d of 103 notifications arrived: %r" % (len(got), got[:5])
        th.join(5)
        assert (got[0].channel, got[0].payload, got[0].pid) == ("chan_a", "from direct", d.info.backend_pid)
        assert (got[1].channel, got[1].payload) == ("Chan B", "from the gateway: ünïcode ✓")
        assert [n.payload for n in got[2:102]] == ["tx-%d" % i for i in range(100)]
        assert got[102].payload == "p" * 7000
        assert len({n.pid for n in got[1:]}) == 1
        # the listener still answers queries, and delivery during a query goes to the handler
        handled = []
        listener.add_notify_handler(handled.append)
        d.execute("NOTIFY chan_a, 'during a query'")
        time.sleep(0.2)
        assert listener.execute("SELECT 'after'").fetchone() == ("after",)
        assert [n.payload for n in handled] == ["during a query"], handled
        listener.execute("UNLISTEN *")
        check_usable(listener)


def _cancel_once(conn, sql="SELECT pg_sleep(10)", params=None):
    marks = {}

    def canceller():
        time.sleep(0.5)
        marks["cancel"] = time.monotonic()
        conn.cancel()

    th = threading.Thread(target=canceller)
    th.start()
    t_start = time.monotonic()
    try:
        conn.execute(sql, params)
        raise AssertionError("%s was not cancelled" % sql)
    except errors.QueryCanceled as e:
        t_end = time.monotonic()
        assert e.sqlstate == "57014", e.sqlstate
    th.join()
    elapsed = t_end - marks["cancel"]
    assert elapsed < 1.5, "cancel took %.2fs" % elapsed
    assert t_end - t_start < 3
    return elapsed


def test_psycopg_cancel():
    with gw_conn(autocommit=True) as c:
        elapsed = _cancel_once(c)
        check_usable(c)
        # the minted key is not the upstream's
        real_pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
        assert c.info.backend_pid != real_pid, "the client sees the upstream backend pid"
        # inside a transaction: INERROR, rollback, usable
        c.autocommit = False
        c.execute("SELECT 1")
        elapsed2 = _cancel_once(c)
        assert c.info.transaction_status == pq.TransactionStatus.INERROR
        c.rollback()
        check_usable(c)
        # extended protocol with a parameter
        c.autocommit = True
        elapsed3 = _cancel_once(c, "SELECT pg_sleep(%s)", [10])
        check_usable(c)
    # a cancel aimed at one session never hits another
    with gw_conn(autocommit=True) as a, gw_conn("agent2", autocommit=True) as b:
        res = {}

        def run_b():
            res["b"] = b.execute("SELECT pg_sleep(1.5), 'b done'").fetchone()[1]

        th = threading.Thread(target=run_b)
        th.start()
        time.sleep(0.3)
        a.cancel()  # a is idle: nothing to cancel
        th.join(10)
        assert res.get("b") == "b done", res
        check_usable(a)
    print("     cancel delivered in %.3fs, %.3fs (in a transaction), %.3fs (extended)" % (elapsed, elapsed2, elapsed3))


def test_psycopg_bytea_100mb():
    size = 100 * 1024 * 1024
    data = os.urandom(size)
    want = hashlib.sha256(data).hexdigest()
    with gw_conn(autocommit=True) as c, direct_conn(autocommit=True) as d:
        c.execute("DROP TABLE IF EXISTS big_t")
        c.execute("CREATE TABLE big_t (id int, b bytea)")
        c.execute("ALTER TABLE big_t ALTER COLUMN b SET STORAGE EXTERNAL")
        t0 = time.time()
        c.execute("INSERT INTO big_t VALUES (1, %b)", [data])
        t_in = time.time() - t0
        assert d.execute("SELECT length(b), encode(sha256(b), 'hex') FROM big_t").fetchone() == (size, want)
        t0 = time.time()
        got = c.cursor(binary=True).execute("SELECT b FROM big_t WHERE id = 1").fetchone()[0]
        t_out = time.time() - t0
        assert len(got) == size and hashlib.sha256(got).hexdigest() == want
        del got
        # text format: a 200 MB hex DataRow
        got = c.execute("SELECT b FROM big_t WHERE id = 1").fetchone()[0]
        assert len(got) == size and hashlib.sha256(got).hexdigest() == want
        del got
        c.execute("DROP TABLE big_t")
        check_usable(c)
    print("     100 MB in %.1fs, out %.1fs" % (t_in, t_out))


def test_psycopg_notices():
    with gw_conn(autocommit=True) as c:
        notices = []
        # a Diagnostic is valid only inside the handler: copy its fields out
        c.add_notice_handler(lambda d: notices.append(dict(
            severity=d.severity, sqlstate=d.sqlstate, message_primary=d.message_primary,
            message_detail=d.message_detail, message_hint=d.message_hint)))
        c.execute("SET client_min_messages = notice")
        c.execute("DROP TABLE IF EXISTS surely_missing_table")
        c.execute("""DO $$ BEGIN
                       RAISE NOTICE 'hello %', 42;
                       RAISE WARNING 'careful' USING DETAIL = 'some detail', HINT = 'a hint';
                       RAISE NOTICE '%', repeat('n', 3000000);
                     END $$""")
        c.execute("CREATE TEMP TABLE notice_t AS SELECT 1 AS a")
        c.execute("CREATE TEMP TABLE IF NOT EXISTS notice_t (a int)")
        got = [(n["severity"], n["sqlstate"], n["message_primary"]) for n in notices]
        assert got[0] == ("NOTICE", "00000", 'table "surely_missing_table" does not exist, skipping'), got
        assert got[1] == ("NOTICE", "00000", "hello 42"), got
        assert got[2] == ("WARNING", "01000", "careful"), got
        assert (notices[2]["message_detail"], notices[2]["message_hint"]) == ("some detail", "a hint")
        assert got[3] == ("NOTICE", "00000", "n" * 3000000), got[3][:2]  # larger than any buffer limit
        assert got[4] == ("NOTICE", "42P07", 'relation "notice_t" already exists, skipping'), got
        assert len(got) == 5, got
        # an ErrorResponse of 3 MB (not streamed: framed whole)
        try:
            c.execute("DO $$ BEGIN RAISE EXCEPTION '%', repeat('e', 3000000) USING ERRCODE = 'P0001'; END $$")
            raise AssertionError("exception not raised")
        except errors.RaiseException as e:
            assert e.diag.message_primary == "e" * 3000000
        check_usable(c)


def test_psycopg_multi_statement_simple_query():
    with gw_conn(autocommit=True) as c:
        cur = c.cursor()
        cur.execute("CREATE TEMP TABLE ms_t (a int); INSERT INTO ms_t VALUES (1), (2), (3); "
                    "SELECT a FROM ms_t ORDER BY a; SELECT 'second' AS b, 2 AS c")
        assert cur.statusmessage == "CREATE TABLE"
        assert cur.nextset()
        assert cur.statusmessage == "INSERT 0 3" and cur.rowcount == 3
        assert cur.nextset()
        assert cur.fetchall() == [(1,), (2,), (3,)]
        assert cur.nextset()
        assert [d.name for d in cur.description] == ["b", "c"] and cur.fetchall() == [("second", 2)]
        assert not cur.nextset()
        # an error in the middle: the whole implicit transaction is rolled back, later statements never run
        try:
            cur.execute("INSERT INTO ms_t VALUES (4); SELECT 1 / 0; INSERT INTO ms_t VALUES (5)")
            raise AssertionError("division by zero accepted")
        except errors.DivisionByZero:
            pass
        assert c.info.transaction_status == pq.TransactionStatus.IDLE
        assert cur.execute("SELECT array_agg(a ORDER BY a) FROM ms_t").fetchone() == ([1, 2, 3],)
        # explicit transaction control inside one query string
        cur.execute("BEGIN; INSERT INTO ms_t VALUES (10); SAVEPOINT x; INSERT INTO ms_t VALUES (11); "
                    "ROLLBACK TO x; COMMIT; SELECT sum(a) FROM ms_t")
        while cur.nextset():
            pass
        assert cur.fetchone() == (16,)
        # a query string that leaves a transaction open
        cur.execute("BEGIN; SELECT 1")
        assert c.info.transaction_status == pq.TransactionStatus.INTRANS
        cur.execute("COMMIT")
        # empty query and comment-only query
        cur.execute("")
        assert cur.pgresult.status == pq.ExecStatus.EMPTY_QUERY
        cur.execute("-- nothing ;")
        check_usable(c)


def _gateway_cpu():
    with open("/proc/%d/stat" % ctx["gw"].proc.pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _drain_pipeline(pgconn, timeout=60):
    """Results of a non-blocking pipeline up to its PIPELINE_SYNC (every one must be TUPLES_OK)."""
    out = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        pending = pgconn.flush() == 1
        pgconn.consume_input()
        while not pgconn.is_busy():
            r = pgconn.get_result()
            if r is None:
                continue  # the end of one query's results
            if r.status == pq.ExecStatus.PIPELINE_SYNC:
                return out
            assert r.status == pq.ExecStatus.TUPLES_OK, (r.status, r.error_message)
            out.append(r)
        select.select([pgconn.socket], [pgconn.socket] if pending else [], [], 0.5)
    raise AssertionError("pipeline did not finish: %d results" % len(out))


def test_backpressure_does_not_spin():
    """A client that does not read, or a server that does not read, stalls the other side without burning CPU."""
    with gw_conn(autocommit=True) as c:
        pgc = c.pgconn
        # server -> client: 100 MB of rows the client does not read for 3 s
        pgc.send_query(b"SELECT repeat('x', 1000) FROM generate_series(1, 100000)")
        while pgc.flush():
            time.sleep(0.01)
        time.sleep(0.5)
        cpu0 = _gateway_cpu()
        time.sleep(3)
        spent_out = _gateway_cpu() - cpu0
        n = 0
        while True:
            pgc.consume_input()
            if pgc.is_busy():
                select.select([pgc.socket], [], [], 1)
                continue
            r = pgc.get_result()
            if r is None:
                break
            assert r.status == pq.ExecStatus.TUPLES_OK, r.error_message
            n += r.ntuples
        assert n == 100000, n
        # client -> server: 30 MB of pipelined queries behind a pg_sleep(4) (the server reads nothing meanwhile)
        pgc.nonblocking = 1
        pgc.enter_pipeline_mode()
        pgc.send_query_params(b"SELECT pg_sleep(4)::text", None)
        big = b"y" * 10000
        for i in range(3000):
            pgc.send_query_params(b"SELECT length($1::text)", [big])
        pgc.pipeline_sync()
        t0 = time.time()
        while pgc.flush() == 1 and time.time() - t0 < 0.5:
            select.select([], [pgc.socket], [], 0.1)
        cpu0 = _gateway_cpu()
        time.sleep(2)
        spent_in = _gateway_cpu() - cpu0
        results = _drain_pipeline(pgc)
        assert len(results) == 3001 and results[0].get_value(0, 0) == b"", len(results)
        assert all(r.get_value(0, 0) == b"10000" for r in results[1:])
        pgc.exit_pipeline_mode()
        pgc.nonblocking = 0
        check_usable(c)
    print("     gateway CPU while stalled: %.2fs of 3s (client not reading), %.2fs of 2s (server not reading)"
          % (spent_out, spent_in))
    assert spent_out < 0.5 and spent_in < 0.5, (spent_out, spent_in)


# ---- 3. pgbench ----

def pgbench_env():
    ident, token = ctx["agent"]
    gw = ctx["gw"]
    return dict(os.environ, PGHOST="127.0.0.1", PGPORT=str(gw.port), PGUSER=ident, PGPASSWORD=token,
                PGDATABASE="main", PGSSLMODE="require", PGCONNECT_TIMEOUT="10")


def pgbench_init():
    if ctx.get("pgbench_init"):
        return
    pg = ctx["pg"]
    r = subprocess.run(["pgbench", "-i", "-q", "-s", "1", "-h", pg.sock, "-p", str(pg.port), "-U", "gw_scram", "app"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    ctx["pgbench_init"] = True


def pgbench(*args):
    pgbench_init()
    r = subprocess.run(["pgbench", "-n"] + list(args), capture_output=True, text=True, timeout=60,
                       env=pgbench_env())
    out = r.stdout + r.stderr
    assert r.returncode == 0, "pgbench %s exited %d:\n%s" % (" ".join(args), r.returncode, out[-3000:])
    m = re.search(r"number of transactions actually processed: (\d+)", out)
    assert m and int(m.group(1)) > 0, out[-3000:]
    f = re.search(r"number of failed transactions: (\d+)", out)
    assert f and int(f.group(1)) == 0, out[-3000:]
    tps = re.search(r"tps = ([\d.]+)", out)
    print("     pgbench %s: %s transactions, %s tps" % (" ".join(args), m.group(1), tps.group(1) if tps else "?"))
    return out


def test_pgbench_select_simple():
    pgbench("-S", "-T", "3", "-c", "4", "-M", "simple")


def test_pgbench_select_extended():
    pgbench("-S", "-T", "3", "-c", "4", "-M", "extended")


def test_pgbench_select_prepared():
    pgbench("-S", "-T", "3", "-c", "4", "-M", "prepared")


def test_pgbench_tpcb_prepared():
    pgbench("-T", "3", "-c", "4", "-M", "prepared")
    pg = ctx["pg"]
    # the balances stay consistent: every transaction touched each table once
    tot = pg.sql("SELECT (SELECT sum(abalance) FROM pgbench_accounts) = (SELECT sum(tbalance) FROM pgbench_tellers) "
                 "AND (SELECT sum(tbalance) FROM pgbench_tellers) = (SELECT sum(bbalance) FROM pgbench_branches)",
                 db="app")
    assert tot == "t", tot


def test_pgbench_connect_per_transaction():
    pgbench("-S", "-C", "-T", "3", "-c", "4", "-M", "simple")


def test_gateway_stops_cleanly():
    """Last: the gateway stops on SIGTERM and its log holds no sanitizer report."""
    rc = ctx["gw"].stop()
    assert rc == 0, "gateway exited %r" % rc


if __name__ == "__main__":
    harness.main(globals())
