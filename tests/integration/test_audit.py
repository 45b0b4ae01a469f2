#!/usr/bin/python3
"""Issue 4: the record — every statement, attributed, hash-chained, committed before it runs.

Records of the simple and extended protocol (with parameters, binary as hex), COPY and multi-statement
queries; refusals with their rule; a kill -9 in the middle of 50,000 statements loses nothing that reached
a client (and nothing ran unrecorded); tampering with the SQLite file is named by `pgmoat audit verify`;
a full disk refuses statements with 58030 and recording resumes when space is freed; audit.jsonl with
rotation and reopen on SIGHUP.
"""
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import Gateway, PGMOAT, at_exit, make_tempdir, main, shared_postgres  # noqa: E402

import psycopg  # noqa: E402

S = {}
KEY = "test-checkpoint-key-" + os.urandom(8).hex()

POLICIES = """policies:
  - name: agents-read
    who: [group:readers]
    connections: [main]
    scope: read
    guardrails: [no_delete_without_where]
  - name: agents-write
    who: [group:writers]
    connections: [main]
    scope: write
    guardrails: [no_delete_without_where]
"""


def audit_cfg(extra=""):
    return "audit:\n  checkpoint_key: env:PGMOAT_AUDIT_KEY\n" + extra


def setup_module():
    pg = shared_postgres()
    pg.sql("CREATE TABLE IF NOT EXISTS aud_t (id int, v text)", db="app")
    pg.sql("CREATE TABLE IF NOT EXISTS crash_t (s int, i int)", db="app")
    pg.sql("ALTER TABLE aud_t OWNER TO gw_scram", db="app")
    pg.sql("ALTER TABLE crash_t OWNER TO gw_scram", db="app")
    gw = Gateway(pg, extra=POLICIES + audit_cfg("  jsonl: %s/audit.jsonl\n  jsonl_max_size: 64kB\n  jsonl_keep: 3\n"
                                                 % make_tempdir("pgmoat-jsonl-")),
                 env={"PGMOAT_AUDIT_KEY": KEY}).start()
    S.update(pg=pg, gw=gw)
    S["writer"] = gw.agent("writer-1", ["writers"])[1]
    S["reader"] = gw.agent("reader-1", ["readers"])[1]


def db_path(gw):
    return os.path.join(getattr(gw, "dir_state", gw.dir), "state.db")


def rows(gw, sql, args=()):
    c = sqlite3.connect("file:%s?mode=ro" % db_path(gw), uri=True, timeout=10)
    try:
        return c.execute(sql, args).fetchall()
    finally:
        c.close()


def events(gw, session):
    """The session's events as dicts, in order (outcomes merged into their statements)."""
    out, outcomes = [], {}
    for seq, body in rows(gw, "SELECT seq, body FROM audit WHERE session = ? ORDER BY seq", (session,)):
        e = json.loads(body)
        if e["event"] == "outcome":
            outcomes[e["n"]] = e
        else:
            out.append(e)
    for e in out:
        if e["event"] == "statement" and e["n"] in outcomes:
            o = outcomes[e["n"]]
            e.update(status=o["status"], rows=o["rows"], outcome_sqlstate=o["sqlstate"])
    return out


def wait_outcomes(gw, session, n, timeout=5):
    """Outcomes are written within 20 ms of the result; wait until n statements have one."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        ev = [e for e in events(gw, session) if e["event"] == "statement" and "status" in e]
        if len(ev) >= n:
            return
        time.sleep(0.05)


def session_id(conn):
    # the gateway's session id is the application-visible one in /v1/sessions; find it by identity, newest
    return conn.info.parameter_status("application_name")


def newest_session(gw, identity):
    """The identity's newest session (records reach SQLite within ~0.1 s of being committed)."""
    t0 = time.time()
    while True:
        r = rows(gw, "SELECT session FROM audit WHERE event = 'session_open' AND identity = ? "
                 "ORDER BY seq DESC LIMIT 1", (identity,))
        if r:
            return r[0][0]
        assert time.time() - t0 < 5, "no session of %s in the store" % identity
        time.sleep(0.05)


def settle():
    """Committed records reach SQLite within 0.1 s (the writer moves them from the journal)."""
    time.sleep(0.3)


def verify(gw, config=None):
    args = [PGMOAT, "audit", "verify", "-c", config or gw.config]
    return subprocess.run(args, capture_output=True, text=True, env=gw.env, timeout=120)


def test_simple_extended_copy_multistatement_recorded():
    gw = S["gw"]
    with psycopg.connect(gw.dsn("writer-1", S["writer"]), autocommit=True) as c:
        cur = c.cursor()
        # a simple Query holding three statements: three events, in order
        cur.execute("INSERT INTO aud_t VALUES (1, 'a'); INSERT INTO aud_t VALUES (2, 'b'); SELECT count(*) FROM aud_t")
        # the extended protocol with parameters, text and binary
        cur.execute("SELECT %s::int + %s::int AS x, %s::text", (40, 2, "héllo"), prepare=True)
        cur.execute("SELECT %b::bytea", (b"\x00\x01\xfe",))
        # COPY in and out
        with cur.copy("COPY aud_t FROM STDIN") as cp:
            for i in range(100):
                cp.write_row((1000 + i, "copy"))
        with cur.copy("COPY (SELECT * FROM aud_t ORDER BY id LIMIT 5) TO STDOUT") as cp:
            for _ in cp:
                pass
        # an error: its outcome carries the SQLSTATE
        try:
            cur.execute("SELECT 1/0")
        except psycopg.errors.DivisionByZero:
            pass
    sid = newest_session(gw, "writer-1")
    wait_outcomes(gw, sid, 8)
    settle()
    ev = events(gw, sid)
    assert ev[0]["event"] == "session_open" and ev[0]["identity"] == "writer-1" and ev[0]["auth"], ev[0]
    st = [e for e in ev if e["event"] == "statement"]
    texts = [e["statement"] for e in st]
    assert texts[:3] == ["INSERT INTO aud_t VALUES (1, 'a')", "INSERT INTO aud_t VALUES (2, 'b')",
                         "SELECT count(*) FROM aud_t"], texts
    assert all(e["protocol"] == "simple" and e["identity"] == "writer-1" and e["session"] == sid for e in st[:3])
    assert [e.get("rows") for e in st[:3]] == [1, 1, 1], st[:3]
    ext = [e for e in st if e["protocol"] == "extended"]
    # psycopg sends the ints in binary: recorded as hex, the text as sent
    assert ext[0]["params"] == ["\\x0028", "\\x0002", "héllo"], ext[0]
    assert ext[0]["decision"] == "allow" and ext[0]["rule"] == "agents-write" and ext[0]["class"] == "read", ext[0]
    assert ext[1]["params"] == ["\\x0001fe"], ext[1]
    copy_in = [e for e in st if e["statement"].startswith("COPY aud_t FROM")][0]
    assert copy_in["rows"] == 100 and copy_in["status"] == "ok", copy_in
    copy_out = [e for e in st if e["statement"].startswith("COPY (SELECT")][0]
    assert copy_out["rows"] == 5, copy_out
    err = [e for e in st if e["statement"] == "SELECT 1/0"][0]
    assert err["status"] == "error" and err["outcome_sqlstate"] == "22012", err
    assert all(len(e["fingerprint"]) == 16 for e in st)
    # same statement shape, different constants: same fingerprint
    assert st[0]["fingerprint"] == st[1]["fingerprint"]
    assert [e["n"] for e in st] == list(range(1, len(st) + 1))


def test_refusals_recorded_with_rule():
    gw = S["gw"]
    with psycopg.connect(gw.dsn("reader-1", S["reader"]), autocommit=True) as c:
        for sql in ("DELETE FROM aud_t", "INSERT INTO aud_t VALUES (9, 'x')"):
            try:
                c.execute(sql)
                raise AssertionError("not refused: " + sql)
            except psycopg.errors.InsufficientPrivilege:
                pass
        c.execute("SELECT 1")
    sid = newest_session(gw, "reader-1")
    wait_outcomes(gw, sid, 1)
    settle()
    st = [e for e in events(gw, sid) if e["event"] == "statement"]
    assert st[0]["decision"] == "deny" and st[0]["sqlstate"] == "42501" and st[0]["statement"] == "DELETE FROM aud_t"
    assert st[0]["rule"], st[0]
    assert st[1]["decision"] == "deny" and st[1]["class"] == "write", st[1]
    assert st[2]["decision"] == "allow" and st[2]["status"] == "ok", st[2]
    close = [e for e in events(gw, sid) if e["event"] == "session_close"]
    assert close and close[0]["statements"] == 3, close


def test_api_and_cli_read_the_record():
    gw = S["gw"]
    sid = newest_session(gw, "reader-1")
    code, out = gw.api("GET", "/v1/audit?session=%s" % sid)
    assert code == 200, out
    evs = out["events"]
    assert [e["event"] for e in evs][0] == "session_open", evs
    st = [e for e in evs if e["event"] == "statement"]
    assert st[-1]["status"] == "ok" and st[0]["decision"] == "deny", st
    # a non-admin sees only its own record
    code, mine = gw.api("GET", "/v1/audit?identity=reader-1", token=S["reader"])
    assert gw.api("GET", "/v1/audit?identity=writer-1", token=S["reader"])[0] == 403
    assert code == 200 and mine["events"] and all(e["identity"] == "reader-1" for e in mine["events"])
    r = gw.cli("audit", "--session", sid)
    assert "DELETE FROM aud_t" in r.stdout and "42501" in r.stdout, r.stdout
    r = gw.cli("audit", "verify")
    assert r.returncode == 0 and "OK" in r.stdout, r.stdout + r.stderr
    code, v = gw.api("GET", "/v1/audit/verify")
    assert code == 200 and v["ok"] and v["signed_checkpoint"], v


def test_jsonl_copy_rotation_and_sighup():
    gw = S["gw"]
    jdir = [ln.split("jsonl: ")[1].strip() for ln in gw.config_text.splitlines() if "jsonl: " in ln][0]
    with psycopg.connect(gw.dsn("writer-1", S["writer"]), autocommit=True) as c:
        for i in range(300):
            c.execute("SELECT %d AS filler_to_rotate_the_jsonl_file" % i)
    time.sleep(0.3)
    assert os.path.exists(jdir + ".1"), "audit.jsonl was not rotated at 64kB"
    assert not os.path.exists(jdir + ".4"), "more than jsonl_keep rotated files kept"
    line = open(jdir).readline()
    e = json.loads(line)
    assert len(e["hash"]) == 64 and len(e["prev"]) == 64 and e["seq"] >= 1
    # the same record in the store
    (body,) = rows(gw, "SELECT body FROM audit WHERE seq = ?", (e["seq"],))[0]
    assert json.loads(body)["ts"] == e["ts"]
    # logrotate-style: move the file away, SIGHUP, the gateway writes a new one
    os.rename(jdir, jdir + ".moved")
    gw.proc.send_signal(signal.SIGHUP)
    time.sleep(0.3)
    with psycopg.connect(gw.dsn("writer-1", S["writer"]), autocommit=True) as c:
        c.execute("SELECT 'after sighup'")
    time.sleep(0.3)
    assert os.path.exists(jdir) and "after sighup" in open(jdir).read()


def test_normalized_statement_text_keeps_no_constants():
    pg = S["pg"]
    gw = Gateway(pg, extra=audit_cfg("  statement_text: normalized\n"), env={"PGMOAT_AUDIT_KEY": KEY}).start()
    tok = gw.agent("norm-agent")[1]
    with psycopg.connect(gw.dsn("norm-agent", tok), autocommit=True) as c:
        c.execute("SELECT 42, 'secret-literal-value'")
        c.execute("SELECT %s::text", ("secret-param-value",))
    sid = newest_session(gw, "norm-agent")
    wait_outcomes(gw, sid, 2)
    st = [e for e in events(gw, sid) if e["event"] == "statement"]
    assert st[0]["statement"] == "SELECT $1, $2", st[0]
    assert st[1]["statement"] == "SELECT $1::text" and "params" not in st[1], st[1]
    (raw,) = rows(gw, "SELECT group_concat(body) FROM audit")[0]
    assert "secret-literal-value" not in raw and "secret-param-value" not in raw
    gw.stop()


def test_review_decisions_recorded():
    pg = S["pg"]
    gw = Gateway(pg, extra="""policies:
  - name: reviewed-ddl
    who: [group:g-rev]
    connections: [main]
    scope: ddl
    review: [ddl]
""" + audit_cfg(), env={"PGMOAT_AUDIT_KEY": KEY}).start()
    tok = gw.agent("rev-agent", ["g-rev"])[1]
    gw.add_identity("alice", kind="human", groups=["dba"])
    alice = gw.issue_token("alice")
    sql = "CREATE TABLE IF NOT EXISTS aud_rev_t (i int)"
    with psycopg.connect(gw.dsn("rev-agent", tok), autocommit=True) as c:
        try:
            c.execute(sql)
            raise AssertionError("ran without review")
        except psycopg.errors.InsufficientPrivilege as e:
            rid = int(str(e).split("#")[1].split()[0])
        code, _ = gw.api("POST", "/v1/reviews/%d/approve" % rid, {}, token=alice)
        assert code == 200
        c.execute(sql)
    sid = newest_session(gw, "rev-agent")
    wait_outcomes(gw, sid, 1)
    st = [e for e in events(gw, sid) if e["event"] == "statement"]
    assert st[0]["decision"] == "review" and st[0]["review"] == rid and st[0]["rule"] == "reviewed-ddl", st[0]
    assert st[1]["decision"] == "allow" and st[1]["review"] == rid and st[1]["status"] == "ok", st[1]
    gw.stop()


def _until(fn, timeout, what):
    t0 = time.time()
    while True:
        r = fn()
        if r:
            return r
        assert time.time() - t0 < timeout, what
        time.sleep(0.05)


def _insert_until(c, table, start, want_refused):
    """Insert rows start, start+1, ... until the statement is refused (want_refused) or runs; returns (next, ran)."""
    i, ran = start, []
    t0 = time.time()
    while time.time() - t0 < 10:
        try:
            c.execute("INSERT INTO %s VALUES (%d)" % (table, i))
            ran.append(i)
            if not want_refused:
                return i + 1, ran
        except psycopg.errors.IoError as e:
            assert "audit" in str(e)
            if want_refused:
                return i + 1, ran
        i += 1
        time.sleep(0.02)
    raise AssertionError("no %s within 10 s" % ("58030" if want_refused else "recovery"))


def test_store_removed_or_locked_refuses_then_recovers():
    pg = S["pg"]
    pg.sql("CREATE TABLE IF NOT EXISTS gone_t (i int)", db="app")
    pg.sql("ALTER TABLE gone_t OWNER TO gw_scram", db="app")
    pg.sql("TRUNCATE gone_t", db="app")
    gw = Gateway(pg, extra=audit_cfg(), env={"PGMOAT_AUDIT_KEY": KEY}).start()
    tok = gw.agent("gone-agent")[1]
    path = db_path(gw)
    ran = []
    with psycopg.connect(gw.dsn("gone-agent", tok), autocommit=True) as c:
        i, r = _insert_until(c, "gone_t", 0, False)
        ran += r
        # the store file removed (moved away): refused, and back when it is back
        os.rename(path, path + ".away")
        i, r = _insert_until(c, "gone_t", i, True)
        ran += r
        assert _health(gw)[0] == 503
        os.rename(path + ".away", path)
        i, r = _insert_until(c, "gone_t", i, False)
        ran += r
        # locked by another process for 2.5 s (busy timeout 1 s): refused, then recovers
        lock = sqlite3.connect(path, timeout=10)
        lock.execute("BEGIN EXCLUSIVE")
        i, r = _insert_until(c, "gone_t", i, True)
        ran += r
        lock.rollback()
        lock.close()
        i, r = _insert_until(c, "gone_t", i, False)
        ran += r
    settle()
    in_db = set(int(x) for x in pg.sql("SELECT i FROM gone_t", db="app").split())
    assert in_db == set(ran), (sorted(in_db - set(ran))[:5], sorted(set(ran) - in_db)[:5])
    recorded = set()
    for (body,) in rows(gw, "SELECT body FROM audit WHERE event = 'statement' AND identity = 'gone-agent'"):
        st = json.loads(body)["statement"]
        if st.startswith("INSERT INTO gone_t VALUES ("):
            recorded.add(int(st[len("INSERT INTO gone_t VALUES ("):-1]))
    assert in_db <= recorded, "ran without a record: %r" % sorted(in_db - recorded)[:10]
    r = verify(gw)
    assert r.returncode == 0, r.stdout + r.stderr
    gw.stop()


def _copy_store(gw, d):
    """A consistent copy of the store (the gateway keeps writing the original)."""
    src = sqlite3.connect(db_path(gw), timeout=10)
    dst = sqlite3.connect(os.path.join(d, "state.db"))
    src.backup(dst)
    src.close()
    dst.close()
    cfg = os.path.join(d, "pgmoat.yaml")
    with open(cfg, "w") as f:
        f.write(gw.config_text.replace(gw.dir, d))
    return os.path.join(d, "state.db"), cfg


def test_tampering_is_named():
    gw = S["gw"]
    time.sleep(0.1)
    cases = {
        "change": lambda c: c.execute("UPDATE audit SET body = replace(body, 'aud_t', 'xxx_t') WHERE seq = "
                                      "(SELECT min(seq) FROM audit WHERE body LIKE '%aud_t%')"),
        "delete": lambda c: c.execute("DELETE FROM audit WHERE seq = 5"),
        "swap": lambda c: c.executescript(
            "UPDATE audit SET seq = -1 WHERE seq = 6; UPDATE audit SET seq = 6 WHERE seq = 7;"
            "UPDATE audit SET seq = 7 WHERE seq = -1;"),
        "cut tail": lambda c: c.execute("DELETE FROM audit WHERE seq > (SELECT max(seq) - 3 FROM audit)"),
    }
    ok = verify(gw)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    for name, tamper in cases.items():
        d = make_tempdir("pgmoat-tamper-")
        path, cfg = _copy_store(gw, d)
        c = sqlite3.connect(path)
        last = c.execute("SELECT max(seq) FROM audit").fetchone()[0]
        changed = c.execute("SELECT min(seq) FROM audit WHERE body LIKE '%aud_t%'").fetchone()[0]
        tamper(c)
        c.commit()
        c.close()
        r = verify(gw, cfg)
        out = r.stdout + r.stderr
        assert r.returncode == 1 and "BROKEN" in out, (name, out)
        want = {"change": changed, "delete": 5, "swap": 6, "cut tail": last - 2}[name]
        assert ("seq %d" % want) in out, (name, want, out)


def _run_stream(gw, token, sidx, count, acked, stop):
    try:
        with psycopg.connect(gw.dsn("crash-agent", token), autocommit=True) as c:
            for i in range(count):
                if stop.is_set():
                    return
                c.execute("INSERT INTO crash_t VALUES (%d, %d)" % (sidx, i))
                acked.append((sidx, i))
    except psycopg.Error:
        return


def test_kill_9_loses_nothing_that_reached_a_client():
    pg = S["pg"]
    pg.sql("TRUNCATE crash_t", db="app")
    gw = Gateway(pg, extra=audit_cfg(), env={"PGMOAT_AUDIT_KEY": KEY}).start()
    tok = gw.agent("crash-agent")[1]
    total, nsess = 50000, 4
    per = total // nsess
    acked = [[] for _ in range(nsess)]
    stop = threading.Event()
    threads = [threading.Thread(target=_run_stream, args=(gw, tok, k, per, acked[k], stop)) for k in range(nsess)]
    t0 = time.time()
    for t in threads:
        t.start()
    # kill -9 about half way
    while sum(len(a) for a in acked) < total // 2 and time.time() - t0 < 120:
        time.sleep(0.05)
    gw.proc.send_signal(signal.SIGKILL)
    gw.proc.wait()
    killed_at = sum(len(a) for a in acked)
    for t in threads:
        t.join(30)
    gw.proc = None
    gw.start()
    # the rest of the 50,000, after the restart
    rest = (total - killed_at + nsess - 1) // nsess
    threads = [threading.Thread(target=_run_stream, args=(gw, tok, nsess + k, rest, acked[k], stop))
               for k in range(nsess)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    ran = set((int(s), int(i)) for s, i in
              (ln.split("|") for ln in pg.sql("SELECT s, i FROM crash_t", db="app").split()))
    recorded = set()
    for (body,) in rows(gw, "SELECT body FROM audit WHERE event = 'statement' AND identity = 'crash-agent'"):
        st = json.loads(body)["statement"]
        if st.startswith("INSERT INTO crash_t VALUES ("):
            a, b = st[len("INSERT INTO crash_t VALUES ("):-1].split(", ")
            recorded.add((int(a), int(b)))
    acked_all = set(x for a in acked for x in a)
    print("     %d statements acknowledged (%d before the kill -9), %d ran, %d recorded, %.1fs"
          % (len(acked_all), killed_at, len(ran), len(recorded), time.time() - t0))
    assert len(acked_all) >= total, len(acked_all)
    missing = acked_all - recorded
    assert not missing, "acknowledged but not recorded: %r" % sorted(missing)[:10]
    unrecorded = ran - recorded
    assert not unrecorded, "ran upstream without a record: %r" % sorted(unrecorded)[:10]
    r = verify(gw)
    assert r.returncode == 0 and "OK" in r.stdout, r.stdout + r.stderr
    gw.stop()


def _mount_tmpfs(size):
    d = make_tempdir("pgmoat-full-")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", d], capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError("this test mounts a small tmpfs to fill it and needs root: %s" % r.stderr.strip())
    at_exit(lambda: subprocess.run(["umount", "-l", d], capture_output=True))
    return d


def _health(gw):
    try:
        with urllib.request.urlopen(gw.url + "/healthz", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_disk_full_refuses_with_58030_and_recovers():
    pg = S["pg"]
    pg.sql("CREATE TABLE IF NOT EXISTS full_t (i int)", db="app")
    pg.sql("ALTER TABLE full_t OWNER TO gw_scram", db="app")
    pg.sql("TRUNCATE full_t", db="app")
    mnt = _mount_tmpfs("32m")
    gw = Gateway(pg, extra=audit_cfg(), env={"PGMOAT_AUDIT_KEY": KEY})
    # the state store (and so the record) on the small file system
    gw.config_text = gw.config_text.replace("sqlite:%s/state.db" % gw.dir, "sqlite:%s/state.db" % mnt)
    with open(gw.config, "w") as f:
        f.write(gw.config_text)
    gw.dir_state = mnt
    gw.start()
    tok = gw.agent("full-agent")[1]
    filler = os.path.join(mnt, "filler")
    refused = ran_ok = 0
    with psycopg.connect(gw.dsn("full-agent", tok), autocommit=True) as c:
        c.execute("INSERT INTO full_t VALUES (0)")
        # fill the file system
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * 65536)
        except OSError:
            pass
        try:
            while True:  # the last partial block
                os.write(fd, b"\0" * 512)
        except OSError:
            pass
        os.close(fd)
        for i in range(1, 20000):
            try:
                c.execute("INSERT INTO full_t VALUES (%d) -- %s" % (i, "x" * 400))
                ran_ok += 1
            except psycopg.errors.IoError as e:  # 58030
                assert "audit" in str(e), str(e)
                refused += 1
                if refused >= 20:
                    break
        assert refused >= 20, "no 58030 after %d statements on a full disk" % ran_ok
        code, h = _health(gw)
        assert code == 503 and h["status"] == "degraded", (code, h)
        # the session is still usable; free space, and recording resumes by itself
        os.unlink(filler)
        t0 = time.time()
        while True:
            try:
                c.execute("INSERT INTO full_t VALUES (-1)")
                break
            except psycopg.errors.IoError:
                assert time.time() - t0 < 10, "recording did not resume after space was freed"
                time.sleep(0.1)
        assert _health(gw)[0] == 200
    settle()
    ran = [int(x) for x in pg.sql("SELECT i FROM full_t", db="app").split()]
    recorded = set()
    for (body,) in rows(gw, "SELECT body FROM audit WHERE event = 'statement' AND identity = 'full-agent'"):
        st = json.loads(body)["statement"]
        if st.startswith("INSERT INTO full_t VALUES ("):
            recorded.add(int(st[len("INSERT INTO full_t VALUES ("):].split(")")[0]))
    print("     %d ran before the disk filled up, %d refused with 58030, then recovered" % (ran_ok, refused))
    assert set(ran) <= recorded, "ran without a record: %r" % sorted(set(ran) - recorded)[:10]
    assert len(ran) == ran_ok + 2
    r = verify(gw)
    assert r.returncode == 0, r.stdout + r.stderr
    gw.stop()


if __name__ == "__main__":
    main(globals())
