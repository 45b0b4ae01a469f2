"""`pgmoat demo`: it starts, the printed psql line works over verified TLS, a
wrong token is refused, and Ctrl-C removes every process and file it made."""
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from harness import PGMOAT, main, psql, at_exit  # noqa: E402

state = {}


def setup_module():
    out_path = "/tmp/pgmoat-demo-test-%d.out" % os.getpid()
    out = open(out_path, "w+")
    proc = subprocess.Popen([PGMOAT, "demo", "--for", "120"], stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)

    def stop():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        os.unlink(out_path)
    at_exit(stop)
    deadline = time.time() + 90
    text = ""
    while time.time() < deadline:
        out.seek(0)
        text = out.read()
        if "Press Ctrl-C" in text or proc.poll() is not None:
            break
        time.sleep(0.2)
    assert "Press Ctrl-C" in text, "demo did not get ready:\n" + text
    state.update(proc=proc, text=text, out=out)


def demo_psql_line():
    m = re.search(r'psql "(host=[^"]*sslmode=verify-full[^"]*)"', state["text"])
    assert m, state["text"]
    return m.group(1)


def test_printed_psql_line_works_over_verified_tls():
    r = psql(demo_psql_line(), "SELECT count(*) FROM customers", args=["-At"])
    assert r.returncode == 0, r.stderr
    assert int(r.stdout.strip()) >= 8
    r = psql(demo_psql_line(), "SHOW ssl", args=["-At"])
    assert r.returncode == 0, r.stderr


def test_demo_query_comes_back_masked():
    # the README's promise: clone, make demo, paste the psql line, and the PII comes back masked
    r = psql(demo_psql_line(), "SELECT name, email, card_number, ssn FROM customers ORDER BY id LIMIT 1", args=["-At"])
    assert r.returncode == 0, r.stderr
    name, email, card, ssn = r.stdout.strip().split("|")
    assert name == "Ada Lindqvist" and email == "****.com" and card == "**** **** **** 6467" and ssn == "[redacted]", \
        r.stdout
    r = psql(demo_psql_line(), "SELECT note FROM support_notes", args=["-At"])
    assert r.returncode == 0 and "@example" not in r.stdout, r.stdout


def test_topology_database_behind_a_relay():
    """The mission's topology: PostgreSQL has no TCP port, a relay dialed out, the gateway has no password."""
    d = re.search(r"remove (/\S+?)\.?\n", state["text"]).group(1)
    with open(os.path.join(d, "pg", "postgresql.auto.conf")) as f:
        assert "listen_addresses = ''" in f.read()
    with open(os.path.join(d, "pgmoat.yaml")) as f:
        gw_cfg = f.read()
    assert "password" not in gw_cfg and "relay: dc1" in gw_cfg, gw_cfg
    r = psql(demo_psql_line(), "SELECT inet_server_addr() IS NULL", args=["-At"])
    assert r.returncode == 0 and r.stdout.strip() == "t", (r.stdout, r.stderr)  # a Unix-socket backend
    assert subprocess.run(["pgrep", "-f", d + "/relay/relay.yaml"], capture_output=True).returncode == 0
    # pgmoat doctor ran at start, through the relay, and its result was printed
    assert "| connection shop (through relay dc1, target shop: checked by the relay)" in state["text"], state["text"]
    assert "doctor exit code 0 (no high finding)" in state["text"], state["text"]


def test_wrong_token_refused():
    dsn = re.sub(r"password=\S+", "password=wrong", demo_psql_line())
    r = psql(dsn, "SELECT 1")
    assert r.returncode != 0 and "pgmoat: password authentication failed" in r.stderr, r.stderr


def test_ctrl_c_cleans_up():
    proc = state["proc"]
    d = re.search(r"remove (/\S+?)\.?\n", state["text"]).group(1)
    assert os.path.isdir(d)
    pg_pid = int(open(os.path.join(d, "pg", "postmaster.pid")).readline())
    gw_pids = subprocess.run(["pgrep", "-f", d + "/pgmoat.yaml"], capture_output=True, text=True).stdout.split()
    assert gw_pids, "gateway process not found"
    relay_pids = subprocess.run(["pgrep", "-f", d + "/relay/relay.yaml"], capture_output=True, text=True).stdout.split()
    assert relay_pids, "relay process not found"
    gw_pids += relay_pids
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 0
    assert not os.path.exists(d), "demo directory left behind"
    for pid in [pg_pid] + [int(p) for p in gw_pids]:
        try:
            os.kill(pid, 0)
            raise AssertionError("process %d still running after Ctrl-C" % pid)
        except ProcessLookupError:
            pass


main(globals())
