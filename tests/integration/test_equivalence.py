#!/usr/bin/python3
"""Equivalence suite (issue 2): the gateway must be invisible to a client.

Each tests/sql/equivalence/NN_topic.sql is run by psql twice, with the same flags and environment:
directly against PostgreSQL (TCP, sslmode=disable) and through the gateway (TLS, identity + token).
stdout and stderr are merged; the two outputs must be byte-identical. The only thing normalised is the
backend PID in psql's "Asynchronous notification ... received from server process with PID N" lines,
which names a different backend on each route by nature.

Scripts run one after another on one gateway, so later scripts also check that a pooled upstream
connection comes back clean (settings, temp tables, prepared statements, cursors, LISTEN).

Every script runs a third time through a relay (issue 7): the gateway's connection `relayed` names relay dc1
and target app; the relay reaches PostgreSQL over its Unix socket and holds the password.

Scripts in tests/sql/equivalence/plaintext/ end the connection from the server side; libpq words a lost
connection differently over TLS ("SSL SYSCALL error") than over plain TCP, so those go through the gateway
without TLS (allowed on loopback), to compare like with like.

PGMOAT_EQ_KEEP=DIR keeps each run's output as DIR/NAME.direct.out and DIR/NAME.gateway.out.
"""
import difflib
import glob
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import ROOT, Certs, Gateway, Postgres, Relay, main, make_tempdir  # noqa: E402

SQL_DIR = os.path.join(ROOT, "tests", "sql", "equivalence")
SCRIPTS = sorted(glob.glob(os.path.join(SQL_DIR, "[0-9][0-9]_*.sql")))
PLAINTEXT_SCRIPTS = sorted(glob.glob(os.path.join(SQL_DIR, "plaintext", "[0-9][0-9]_*.sql")))
MIN_SCRIPTS = 30
TIMEOUT = 60

# Rich, deterministic output: echo every input line, errors and notices with SQLSTATE, DETAIL, HINT,
# CONTEXT and LOCATION. ON_ERROR_STOP stays off: a script goes on after an error.
PSQL_FLAGS = ["-X", "--echo-all", "-P", "pager=off", "-v", "VERBOSITY=verbose", "-v", "SHOW_CONTEXT=always"]

PID_RE = re.compile(rb"(received from server process with PID )\d+")

_ctx = {}


def setup_module():
    assert len(SCRIPTS) >= MIN_SCRIPTS, "only %d scripts in %s" % (len(SCRIPTS), SQL_DIR)
    pg = Postgres().start().setup_roles()
    gw = Gateway(tls=Certs(), relay_listener=True, env={"GW_SCRAM_PW": "scram-pw"},
                 connections=[dict(name="main", host="127.0.0.1", port=pg.port, database="app", user="gw_scram",
                                   password="env:GW_SCRAM_PW", sslmode="disable"),
                              dict(name="relayed", relay="dc1", target="app")]).start()
    gw.add_identity("dc1", kind="relay")
    relay = Relay(gw, "dc1", gw.issue_token("dc1"),
                  [dict(name="app", host=pg.sock, port=pg.port, database="app", user="gw_scram",
                        password="env:GW_SCRAM_PW")], env={"GW_SCRAM_PW": "scram-pw"}).start()
    ident, token = gw.agent("agent-1")
    tmp = make_tempdir("pgmoat-eq-")
    _ctx.update(pg=pg, gw=gw, relay=relay, tmp=tmp,
                relay_route=gw.dsn(ident, token, dbname="relayed", sslmode="require"),
                direct="host=127.0.0.1 port=%d user=gw_scram password=scram-pw dbname=app sslmode=disable"
                       % pg.port,
                gateway=gw.dsn(ident, token, sslmode="require"),
                gateway_plaintext=gw.dsn(ident, token, sslmode="disable"))


def _env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(LC_ALL="C.UTF-8", LANG="C.UTF-8", PGCLIENTENCODING="UTF8", PGAPPNAME="pgmoat-eq",
               PGCONNECT_TIMEOUT="10", COLUMNS="200", TZ="UTC")
    env.pop("PSQLRC", None)
    return env


def run_script(dsn, script):
    """psql -f script against dsn: (exit code, stdout and stderr merged as bytes)."""
    workdir = os.path.join(_ctx["tmp"], "files")  # the same path on both routes: it is echoed
    os.makedirs(workdir, exist_ok=True)
    # Line-buffered stdout keeps each notice and error next to the statement that caused it.
    cmd = (["stdbuf", "-oL"] if shutil.which("stdbuf") else []) + ["psql"] + PSQL_FLAGS
    cmd += ["-v", "workdir=" + workdir, "-d", dsn, "-f", script]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                       timeout=TIMEOUT, env=_env(), cwd=SQL_DIR)
    return r.returncode, PID_RE.sub(rb"\1N", r.stdout)


def _keep(name, route, out):
    keep = os.environ.get("PGMOAT_EQ_KEEP")
    if keep:
        os.makedirs(keep, exist_ok=True)
        with open(os.path.join(keep, "%s.%s.out" % (name, route)), "wb") as f:
            f.write(out)


def check_script(script, route="gateway"):
    name = os.path.relpath(os.path.splitext(script)[0], SQL_DIR).replace(os.sep, "_")
    rc_d, direct = run_script(_ctx["direct"], script)
    rc_g, through = run_script(_ctx[route], script)
    _keep(name, "direct", direct)
    _keep(name, "gateway", through)
    # The direct run must have really run the script (not failed to connect).
    assert not direct.startswith(b"psql: error:"), direct.decode(errors="replace")[:2000]
    assert direct.strip(), "no output from the direct run"
    if direct != through or rc_d != rc_g:
        diff = difflib.unified_diff(direct.decode(errors="replace").splitlines(),
                                    through.decode(errors="replace").splitlines(),
                                    "direct (exit %d)" % rc_d, "gateway (exit %d)" % rc_g, lineterm="", n=3)
        lines = [ln if len(ln) <= 300 else ln[:300] + "... (%d chars)" % len(ln) for ln in diff]
        if len(lines) > 200:
            lines = lines[:200] + ["... (%d more diff lines)" % (len(lines) - 200)]
        raise AssertionError("%s: output through the gateway differs from the direct output\n%s"
                             % (os.path.relpath(script, SQL_DIR),
                                "\n".join(lines) or "(identical text, exit codes differ)"))


def _make_test(script, route, prefix):
    def test():
        check_script(script, route)
    test.__name__ = prefix + re.sub(r"\W", "_", os.path.splitext(os.path.basename(script))[0])
    return test


for _script in SCRIPTS:
    _t = _make_test(_script, "gateway", "test_")
    globals()[_t.__name__] = _t
for _script in SCRIPTS:
    _t = _make_test(_script, "relay_route", "test_relay_")
    globals()[_t.__name__] = _t
for _script in PLAINTEXT_SCRIPTS:
    _t = _make_test(_script, "gateway_plaintext", "test_plaintext_")
    globals()[_t.__name__] = _t
del _script, _t


def test_zz_gateway_stops_cleanly():
    """After every script: the gateway stops on SIGTERM without a sanitizer report or fatal error."""
    gw = _ctx["gw"]
    assert gw.proc.poll() is None, "the gateway exited during the suite:\n" + gw.read_log()[-4000:]
    assert _ctx["relay"].proc.poll() is None, "the relay exited during the suite:\n" + _ctx["relay"].read_log()[-4000:]
    gw.stop()
    _ctx["relay"].stop()


if __name__ == "__main__":
    main(globals())
