#!/usr/bin/python3
"""Issue 5: masking through an external DLP provider — Presidio's analyzer API.

Presidio cannot be installed here, so tests/lib/presidio_standin.py speaks its REST API (POST /analyze with
character offsets, GET /health). Detected entities, including ones the built-in detectors do not have
(PERSON, LOCATION), are masked; a provider that is down, slow, failing or talking nonsense makes the result
refused with a clear error (on_error: block, the default) and never lets a value through; on_error: builtin
falls back to the built-in detectors. Batching: a large result needs few requests.
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import Gateway, at_exit, free_port, main, make_tempdir, shared_postgres, wait_port  # noqa: E402

import psycopg  # noqa: E402

S = {}
STANDIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib", "presidio_standin.py")

FIXTURE = """
DROP TABLE IF EXISTS people CASCADE;
CREATE TABLE people (id int PRIMARY KEY, email text, bio text);
INSERT INTO people VALUES
 (1, 'alice.jones@example.com', 'Alice Jones moved to Berlin; write to alice.jones@example.com'),
 (2, 'bob.smith@example.org', 'Bob Smith, SSN 536-22-1847, card 4111 1111 1111 1111'),
 (3, 'ada@example.net', 'Grüße from Ada Lindqvist 😀 in Rome, ünïcödé before and after');
CREATE TABLE many AS SELECT i AS id, 'row ' || i || ' belongs to Carol White of London' AS bio
  FROM generate_series(1, 5000) i;
GRANT SELECT ON people, many TO gw_scram;
"""
SECRETS = ["Alice Jones", "Bob Smith", "Berlin", "Ada Lindqvist", "alice.jones@example.com", "bob.smith@example.org", "536-22-1847",
           "4111 1111 1111 1111", "Carol White", "London"]


class Standin:
    def __init__(self, *args):
        self.port = free_port()
        self.log = os.path.join(make_tempdir("pgmoat-presidio-"), "standin.log")
        self.args = args
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(["/usr/bin/python3", STANDIN, str(self.port)] + list(self.args),
                                     stdout=subprocess.DEVNULL, stderr=open(self.log, "ab"))
        at_exit(self.stop)
        wait_port(self.port, proc=self.proc)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def requests(self):
        with open(self.log) as f:
            return sum(1 for line in f if "POST /analyze" in line)

    @property
    def url(self):
        return "http://127.0.0.1:%d/analyze" % self.port


def gateway(url, on_error="block", timeout="1s"):
    extra = ("masking:\n  provider: {presidio: \"%s\", timeout: %s, on_error: %s}\n"
             "  rules:\n    - {column: public.people.email, action: partial}\n" % (url, timeout, on_error))
    gw = Gateway(S["pg"], extra=extra).start()
    return gw, gw.agent("agent-1")[1]


def query(gw, token, sql):
    with psycopg.connect(gw.dsn("agent-1", token), autocommit=True) as c:
        try:
            rows = c.execute(sql).fetchall()
            err = None
        except psycopg.Error as e:
            rows, err = None, e
        # the session stays usable after a refusal
        assert c.execute("SELECT 1").fetchone() == (1,)
    return rows, err


def setup_module():
    pg = shared_postgres()
    r = subprocess.run(["psql", "-X", "-v", "ON_ERROR_STOP=1", "-q"] + pg.psql_args("app"), input=FIXTURE,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    S["pg"] = pg


def test_presidio_entities_masked():
    st = Standin().start()
    gw, tok = gateway(st.url)
    rows, err = query(gw, tok, "SELECT id, email, bio FROM people ORDER BY id")
    assert err is None, err
    assert rows[0] == (1, "****.com", "<PERSON> moved to <LOCATION>; write to <EMAIL_ADDRESS>"), rows[0]
    assert rows[1][2] == "<PERSON>, SSN <US_SSN>, card <CREDIT_CARD>", rows[1]
    # Presidio counts characters, the wire carries bytes: multi-byte text before a find
    assert rows[2][2] == "Grüße from <PERSON> 😀 in <LOCATION>, ünïcödé before and after", rows[2]
    for row in rows:
        for s in SECRETS:
            assert s not in str(row), (s, row)
    # extended protocol and binary results go the same way
    with psycopg.connect(gw.dsn("agent-1", tok), autocommit=True) as c:
        got = c.cursor(binary=True).execute("SELECT bio FROM people WHERE id = %s", [1]).fetchall()
    assert got == [("<PERSON> moved to <LOCATION>; write to <EMAIL_ADDRESS>",)], got
    gw.stop()
    st.stop()


def test_copy_withheld_with_presidio():
    st = Standin().start()
    gw, tok = gateway(st.url)
    with psycopg.connect(gw.dsn("agent-1", tok), autocommit=True) as c:
        try:
            with c.cursor().copy("COPY people TO STDOUT") as cp:
                data = b"".join(bytes(b) for b in cp)
            raise AssertionError("COPY was not refused: %r" % data)
        except psycopg.errors.FeatureNotSupported as e:
            assert "DLP provider" in str(e), str(e)
        assert c.execute("SELECT 1").fetchone() == (1,)
    gw.stop()
    st.stop()


def test_large_result_is_batched():
    st = Standin().start()
    gw, tok = gateway(st.url)
    before = st.requests()
    rows, err = query(gw, tok, "SELECT id, bio FROM many ORDER BY id")
    assert err is None, err
    assert len(rows) == 5000 and all(r[1].endswith("belongs to <PERSON> of <LOCATION>") for r in rows), rows[:3]
    n = st.requests() - before
    assert 1 <= n <= 100, "%d requests for 5,000 values" % n
    gw.stop()
    st.stop()


def test_provider_failures_refuse_the_result():
    for args, why in (((), "down"), (("--delay", "3"), "timeout"), (("--status", "500"), "HTTP 500"),
                      (("--garbage",), "not a list of findings")):
        st = Standin(*args).start()
        if why == "down":
            st.stop()
        gw, tok = gateway(st.url, timeout="1s")
        t0 = time.time()
        rows, err = query(gw, tok, "SELECT bio FROM people ORDER BY id")
        assert rows is None and err is not None, (why, rows)
        assert err.sqlstate == "58000" and "pgmoat: " in str(err) and "DLP provider" in str(err), (why, str(err))
        assert time.time() - t0 < 10, why
        # a result with nothing to scan does not need the provider
        rows, err = query(gw, tok, "SELECT id FROM people ORDER BY id")
        assert err is None and rows == [(1,), (2,), (3,)], (why, err)
        gw.stop()
        st.stop()


def test_on_error_builtin_falls_back_to_the_builtin_detectors():
    st = Standin()
    st.port = free_port()  # nothing listens there
    gw, tok = gateway(st.url, on_error="builtin")
    rows, err = query(gw, tok, "SELECT bio FROM people ORDER BY id")
    assert err is None, err
    assert "alice.jones@example.com" not in rows[0][0] and "<EMAIL_ADDRESS>" in rows[0][0], rows
    assert "536-22-1847" not in rows[1][0] and "<CREDIT_CARD>" in rows[1][0], rows
    gw.stop()


def test_health_and_config_errors():
    st = Standin().start()
    import urllib.request
    assert urllib.request.urlopen("http://127.0.0.1:%d/health" % st.port).read() == b"Presidio Analyzer service is up"
    st.stop()
    d = make_tempdir("pgmoat-cfg-")
    from harness import PGMOAT
    for bad, msg in (("provider: {presidio: ftp://x}", "http:// or https://"),
                     ("provider: {presidio: \"http://x/analyze\", on_error: pass}", "there is no setting that lets"),
                     ("provider: {timeout: 1s}", "presidio: the analyzer's URL")):
        path = os.path.join(d, "bad.yaml")
        with open(path, "w") as f:
            f.write("state: \"sqlite:%s/s.db\"\ntls: {allow_plaintext_loopback: true}\nmasking:\n  %s\n" % (d, bad))
        r = subprocess.run([PGMOAT, "check", "-c", path], capture_output=True, text=True)
        assert r.returncode != 0 and msg in r.stderr + r.stdout, (bad, r.stderr, r.stdout)


if __name__ == "__main__":
    main(globals())
