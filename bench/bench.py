#!/usr/bin/python3
"""make bench: pgbench against PostgreSQL directly, through pgbouncer (session
pool) and through pgmoat, runs alternated, medians and ratios printed; then
RSS per idle TLS client session with 5,000 idle sessions.

Options: --time S (per run, default 5), --rounds N (default 3), --quick
(1 round of 2 s), --skip-idle, --idle N (default 5000).
"""
import argparse
import urllib.request
import os
import re
import resource
import socket
import ssl
import statistics
import struct
import shutil
import subprocess
import tempfile
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "lib"))
import harness  # noqa: E402
from harness import Certs, Gateway, Postgres, Relay, free_port, wait_port, make_tempdir, at_exit, IS_ROOT, PGBIN, PGMOAT  # noqa: E402


POLICY = ("policies:\n  - name: bench-read\n    who: [group:bench]\n    connections: [main]\n"
          "    scope: read\n    tables: [public.pgbench_accounts, public.pgbench_branches, "
          "public.pgbench_tellers, public.pgbench_history, "
          "public.mask_bench]\n"
          "    guardrails: [no_delete_without_where, no_update_without_where, no_drop, no_truncate]\n"
          # masking on: pgbench's tables have nothing to mask, but every result is planned (and text scanned)
          "masking:\n  rules:\n    - {column: public.mask_bench.email, action: partial}\n"
          "    - {column: public.mask_bench.ssn, action: redact}\n"
          "    - {column: public.pgbench_accounts.filler, action: redact}\n")


def log(msg):
    print(msg, flush=True)


def start_pgbouncer(pg, pool_size):
    d = make_tempdir("pgmoat-bench-bouncer-")
    port = free_port()
    users = os.path.join(d, "userlist.txt")
    with open(users, "w") as f:
        f.write('"gw_scram" "scram-pw"\n')
    ini = os.path.join(d, "pgbouncer.ini")
    with open(ini, "w") as f:
        f.write("[databases]\nmain = host=127.0.0.1 port=%d dbname=app user=gw_scram password=scram-pw\n"
                "[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = %d\nunix_socket_dir =\n"
                "auth_type = plain\nauth_file = %s\npool_mode = session\ndefault_pool_size = %d\n"
                "max_client_conn = 12000\nlogfile = %s/pgbouncer.log\npidfile = %s/pgbouncer.pid\n"
                "log_connections = 0\nlog_disconnections = 0\n"
                % (pg.port, port, users, pool_size, d, d))
    if IS_ROOT:
        import shutil
        for p in (d, users, ini):
            shutil.chown(p, "postgres", "postgres")
    proc = subprocess.Popen(harness.as_postgres(["/usr/sbin/pgbouncer", ini]), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)

    def stop():
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    at_exit(stop)
    wait_port(port, proc=proc)
    return port, proc


def cpu_seconds(pid):
    """User+system CPU of a process (all its threads), in seconds."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            x = f.read().rsplit(")", 1)[1].split()
        return (int(x[11]) + int(x[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def pgbench(env, args, seconds, pid=None):
    """TPS of one pgbench run; with pid, also the CPU that process spent per transaction (us)."""
    c0 = cpu_seconds(pid) if pid else 0.0
    cmd = [PGBIN + "/pgbench", "-n", "-T", str(seconds)] + args
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=seconds + 60)
    m = re.search(r"tps = ([0-9.]+) \((?:without|excluding) initial", r.stdout) or \
        re.search(r"tps = ([0-9.]+)", r.stdout)
    if r.returncode != 0 or not m:
        raise RuntimeError("pgbench %s failed: %s %s" % (" ".join(args), r.stdout[-500:], r.stderr[-1500:]))
    failed = re.search(r"number of failed transactions: (\d+)", r.stdout)
    if failed and int(failed.group(1)):
        raise RuntimeError("pgbench reported failed transactions: %s" % r.stdout[-500:])
    if pid is None:
        return float(m.group(1))
    n = re.search(r"number of transactions actually processed: (\d+)", r.stdout)
    us = (cpu_seconds(pid) - c0) * 1e6 / max(1, int(n.group(1))) if n else 0.0
    return float(m.group(1)), us


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def v3_login(sock, user, password, dbname):
    params = b"user\0" + user.encode() + b"\0database\0" + dbname.encode() + b"\0\0"
    sock.sendall(struct.pack("!II", 8 + len(params), 196608) + params)
    buf = b""
    while True:
        while len(buf) < 5:
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError("closed during login")
            buf += chunk
        t, ln = buf[0:1], struct.unpack("!I", buf[1:5])[0]
        while len(buf) < 1 + ln:
            buf += sock.recv(65536)
        body, buf = buf[5:1 + ln], buf[1 + ln:]
        if t == b"R" and struct.unpack("!I", body[:4])[0] == 3:
            pw = password.encode() + b"\0"
            sock.sendall(b"p" + struct.pack("!I", 4 + len(pw)) + pw)
        elif t == b"E":
            raise RuntimeError("login refused: %r" % body)
        elif t == b"Z":
            return


def idle_sessions(gw, user, token, n):
    """Open n TLS sessions that log in and stay idle; return KiB RSS per session."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ctx = ssl.create_default_context(cafile=gw.certs.ca)
    socks = []
    time.sleep(0.5)
    base = rss_kib(gw.proc.pid)
    t0 = time.time()
    for i in range(n):
        raw = socket.create_connection(("127.0.0.1", gw.port))
        raw.sendall(struct.pack("!II", 8, 80877103))
        if raw.recv(1) != b"S":
            raise RuntimeError("gateway refused TLS")
        s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        v3_login(s, user, token, "main")
        socks.append(s)
        if (i + 1) % 1000 == 0:
            log("  %d idle TLS sessions open (%.1fs)" % (i + 1, time.time() - t0))
    time.sleep(1.0)
    after = rss_kib(gw.proc.pid)
    for s in socks:
        try:
            s.close()
        except OSError:
            pass
    return base, after, (after - base) / n


def metrics(gw):
    text = urllib.request.urlopen(gw.url + "/metrics", timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            k, v = line.split(" ", 1)
            out[k] = int(float(v))
    return out


def recorder_bench(quick):
    """The recorder alone: statement records committed through the journal and stored in SQLite per second."""
    exe = os.path.join(os.path.dirname(PGMOAT), "audit_bench")
    log("bench: the recorder alone (%s)" % exe)
    for sessions in (1, 8, 32):
        d = tempfile.mkdtemp(prefix="pgmoat-audit-bench-")
        try:
            r = subprocess.run([exe, "--records", "100000" if quick else "500000", "--sessions", str(sessions), d],
                               capture_output=True, text=True, timeout=600)
            if r.returncode != 0:
                raise RuntimeError("audit_bench failed: %s %s" % (r.stdout, r.stderr))
            for line in r.stdout.splitlines():
                log("  " + line)
        finally:
            shutil.rmtree(d, ignore_errors=True)


def detector_bench():
    """The built-in detectors alone: MB/s per core on generated mixed text."""
    exe = os.path.join(os.path.dirname(PGMOAT), "detect_bench")
    log("bench: the masking detectors alone (%s)" % exe)
    r = subprocess.run([exe], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError("detect_bench failed: %s %s" % (r.stdout, r.stderr))
    for line in r.stdout.splitlines():
        log("  " + line)


MASK_ROWS = """CREATE TABLE mask_bench AS SELECT i AS id, 'user' || i || '@example.com' AS email,
  lpad((i % 665 + 100)::text, 3, '0') || '-' || lpad((i % 98 + 1)::text, 2, '0') || '-' ||
  lpad((i % 9998 + 1)::text, 4, '0') AS ssn,
  'Order ' || i || ' shipped to the customer in Berlin on 2026-03-' || (i % 28 + 1) ||
  '; call back next week about invoice ' || (i * 7 % 100000) ||
  CASE WHEN i % 10 = 0 THEN ', contact jane.doe' || i || '@example.org' ELSE '' END AS note
FROM generate_series(1, ROWS) i"""


def masking_stream(pg, targets, pids, rows, rounds):
    """A large result through pgmoat with two masked columns and one scanned text column, against the same
    result unmasked (pgmoat-open): rows per second and the ratio."""
    log("bench: masking a %d-row result (email partial, ssn redact, note scanned by the detectors)" % rows)
    pg.sql("DROP TABLE IF EXISTS mask_bench", db="app")
    pg.sql(MASK_ROWS.replace("ROWS", str(rows)), db="app")
    pg.sql("GRANT SELECT ON mask_bench TO gw_scram", db="app")
    script = os.path.join(make_tempdir("pgmoat-bench-mask-"), "q.sql")
    with open(script, "w") as f:
        f.write("SELECT id, email, ssn, note FROM mask_bench;\n")
    # one query first: the gateway sees a table created behind its back and reads its catalog again
    warm = os.path.join(os.path.dirname(script), "warm.sql")
    with open(warm, "w") as f:
        f.write("SELECT id, email, ssn, note FROM mask_bench LIMIT 1;\n")
    for n in ("pgmoat", "pgmoat-open"):
        subprocess.run([PGBIN + "/pgbench", "-n", "-c", "1", "-t", "2", "-f", warm], capture_output=True,
                       env=targets[n], timeout=60, check=True)
    out = {"pgmoat": [], "pgmoat-open": []}
    cpu = {"pgmoat": [], "pgmoat-open": []}
    for r in range(rounds):
        for n in (["pgmoat", "pgmoat-open"] if r % 2 == 0 else ["pgmoat-open", "pgmoat"]):
            cmd = [PGBIN + "/pgbench", "-n", "-c", "1", "-t", "2", "-f", script]
            c0 = cpu_seconds(pids[n])
            res = subprocess.run(cmd, capture_output=True, text=True, env=targets[n], timeout=900)
            c1 = cpu_seconds(pids[n])
            m = re.search(r"latency average = ([0-9.]+) ms", res.stdout)
            done = re.search(r"number of transactions actually processed: 2/2", res.stdout)
            failed = re.search(r"number of failed transactions: (\d+)", res.stdout)
            if res.returncode != 0 or not m or not done or (failed and int(failed.group(1))):
                raise RuntimeError("pgbench (masking) failed: %s %s" % (res.stdout[-500:], res.stderr[-500:]))
            out[n].append(rows / (float(m.group(1)) / 1000.0))
            cpu[n].append((c1 - c0) * 1e9 / (2 * rows))
    med = {n: statistics.median(v) for n, v in out.items()}
    mc = {n: statistics.median(v) for n, v in cpu.items()}
    log("  masked %.0f rows/s, unmasked %.0f rows/s: masked/unmasked %.2f (median of %d alternated runs); gateway "
        "CPU per row %.0f ns masked, %.0f ns unmasked" % (med["pgmoat"], med["pgmoat-open"],
                                                         med["pgmoat"] / med["pgmoat-open"], rounds,
                                                         mc["pgmoat"], mc["pgmoat-open"]))
    pg.sql("DROP TABLE mask_bench", db="app")


def relay_bench(pg, env0, policy, certs, seconds, rounds):
    """Issue 7: pgbench -S through gateway + relay against the same gateway's direct connection, and
    connection churn (-C) through the relay against PostgreSQL itself."""
    conns = [dict(name="main", host="127.0.0.1", port=pg.port, database="app", user="gw_scram",
                  password="env:GW_SCRAM_PW", sslmode="disable", pool=64),
             dict(name="relayed", relay="dc1", target="app", pool=64)]
    gw = Gateway(tls=certs, connections=conns, env={"GW_SCRAM_PW": "scram-pw"}, relay_listener=True,
                 extra=policy.replace("connections: [main]", "connections: [main, relayed]")).start()
    gw.add_identity("dc1", kind="relay")
    relay = Relay(gw, "dc1", gw.issue_token("dc1"),
                  [dict(name="app", host=pg.sock, port=pg.port, database="app", user="gw_scram",
                        password="env:GW_SCRAM_PW", pool=64)], env={"GW_SCRAM_PW": "scram-pw"}).start()
    user, token = gw.agent("bench-agent", ["bench"])
    t = {"pgmoat-direct": dict(env0, PGPORT=str(gw.port), PGDATABASE="main", PGUSER=user, PGPASSWORD=token),
         "pgmoat-relay": dict(env0, PGPORT=str(gw.port), PGDATABASE="relayed", PGUSER=user, PGPASSWORD=token),
         "postgres": dict(env0)}
    for n in ("pgmoat-direct", "pgmoat-relay"):
        pgbench(t[n], ["-S", "-c", "8", "-j", "2"], max(2, seconds // 2))
    res = {"pgmoat-direct": [], "pgmoat-relay": []}
    churn = {"pgmoat-relay": [], "postgres": []}
    for r in range(rounds):
        for n in (("pgmoat-direct", "pgmoat-relay") if r % 2 == 0 else ("pgmoat-relay", "pgmoat-direct")):
            res[n].append(pgbench(t[n], ["-S", "-M", "simple", "-c", "8", "-j", "2"], seconds))
        for n in (("postgres", "pgmoat-relay") if r % 2 == 0 else ("pgmoat-relay", "postgres")):
            churn[n].append(pgbench(t[n], ["-S", "-C", "-c", "8", "-j", "2"], seconds))
    md = {n: statistics.median(v) for n, v in res.items()}
    mc = {n: statistics.median(v) for n, v in churn.items()}
    log("relay: pgbench -S -c 8, median of %d alternated runs: pgmoat direct %.0f TPS, pgmoat + relay %.0f TPS: "
        "ratio %.2f (goal >= 0.85)" % (rounds, md["pgmoat-direct"], md["pgmoat-relay"],
                                        md["pgmoat-relay"] / md["pgmoat-direct"]))
    log("relay: pgbench -S -C -c 8 (a new connection per transaction): PostgreSQL direct %.0f TPS, "
        "pgmoat + relay %.0f TPS: ratio %.2f (goal >= 3)" % (mc["postgres"], mc["pgmoat-relay"],
                                                          mc["pgmoat-relay"] / mc["postgres"]))
    relay.stop()
    gw.stop()


def jwt_bench(pg, env0, certs, seconds, rounds, quick):
    """Issue 8: what a JWT login costs next to an API-token login — the gateway's CPU per login
    (cached keys, plaintext loopback so TLS does not hide it), verify time per algorithm (the unit
    test's measure), and pgbench -S -C over TLS with a JWT in PGPASSWORD against an API token."""
    sys.path.insert(0, os.path.join(harness.ROOT, "src", "identity"))
    import jwt_forge as jf
    unit = os.path.join(harness.BUILD, "unit_tests")
    if os.path.exists(unit):
        r = subprocess.run([unit, "jwt_verify_cost"], capture_output=True, text=True, timeout=300)
        for line in r.stdout.splitlines():
            if line.strip().startswith("verify "):
                log("jwt: %s per token (parse, key lookup, signature, claims)" % line.strip())
    else:
        log("jwt: %s not built; per-algorithm verify cost skipped (make BUILD=... %s)" % (unit, unit))
    keys = jf.Keys()
    d = make_tempdir("pgmoat-bench-jwt-")
    kf = os.path.join(d, "jwks.json")
    with open(kf, "w") as f:
        f.write(__import__("json").dumps(keys.jwks()))
    iss = "https://bench.issuer"
    conn = [dict(name="main", host="127.0.0.1", port=pg.port, database="app", user="gw_scram",
                 password="env:GW_SCRAM_PW", sslmode="disable", pool=64)]
    gw = Gateway(pg, tls=certs, connections=conn, env={"GW_SCRAM_PW": "scram-pw"}, plaintext_loopback=True,
                 extra="identity:\n  oidc:\n    - {issuer: %s, audience: pgmoat, jwks_file: %s}\n"
                       "limits: {auth_failures_per_minute: 0}\n" % (iss, kf)).start()
    user, token = gw.agent("bench-agent")
    gw.add_identity("bench-jwt")
    jwts = {alg: jf.make(keys, jf.claims(iss, "pgmoat", "bench-jwt", ttl=86400), alg=alg)
            for alg in ("RS256", "ES256", "EdDSA")}
    n = 300 if quick else 2000

    def login_cpu(u, pw):
        c0 = cpu_seconds(gw.proc.pid)
        t0 = time.time()
        for _ in range(n):
            with socket.create_connection(("127.0.0.1", gw.port)) as sk:
                v3_login(sk, u, pw, "main")
                sk.sendall(b"X\0\0\0\4")
        return (cpu_seconds(gw.proc.pid) - c0) * 1e6 / n, (time.time() - t0) * 1e6 / n

    login_cpu(user, token)  # warm up (the pool learns the server's parameters)
    tok_cpu, tok_wall = login_cpu(user, token)
    log("jwt: login through the gateway (plaintext loopback, %d logins each; CPU of the gateway per login, "
        "wall time per login): API token %.0f us CPU, %.0f us wall" % (n, tok_cpu, tok_wall))
    for alg, t in jwts.items():
        c, w = login_cpu("bench-jwt", t)
        log("jwt:   JWT %-6s %.0f us CPU (+%.0f us over the API token), %.0f us wall" % (alg, c, c - tok_cpu, w))
    tls = dict(env0, PGPORT=str(gw.port), PGDATABASE="main", PGSSLMODE="require")
    t = {"token": dict(tls, PGUSER=user, PGPASSWORD=token),
         "jwt": dict(tls, PGUSER="bench-jwt", PGPASSWORD=jwts["RS256"])}
    res = {"token": [], "jwt": []}
    for r in range(rounds):
        for k in (("token", "jwt") if r % 2 == 0 else ("jwt", "token")):
            res[k].append(pgbench(t[k], ["-S", "-C", "-c", "8", "-j", "2"], seconds))
    md = {k: statistics.median(v) for k, v in res.items()}
    log("jwt: pgbench -S -C -c 8 over TLS, median of %d alternated runs: API token %.0f TPS, JWT (RS256) %.0f TPS: "
        "ratio %.2f (goal >= 0.9)" % (rounds, md["token"], md["jwt"], md["jwt"] / md["token"]))
    gw.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--time", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--skip-idle", action="store_true")
    ap.add_argument("--skip-recorder", action="store_true")
    ap.add_argument("--skip-masking", action="store_true")
    ap.add_argument("--skip-relay", action="store_true")
    ap.add_argument("--only-relay", action="store_true", help="PostgreSQL, one gateway and a relay only")
    ap.add_argument("--skip-jwt", action="store_true")
    ap.add_argument("--only-jwt", action="store_true", help="PostgreSQL and one gateway trusting a JWT issuer only")
    ap.add_argument("--idle", type=int, default=5000)
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--workloads", default="simple,prepared,churn", help="which of simple,prepared,churn to run")
    a = ap.parse_args()
    if a.quick:
        a.time, a.rounds, a.idle = 2, 1, 1000
    if a.only_relay or a.only_jwt:
        a.skip_recorder = a.skip_masking = True
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 65536)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    if not a.skip_recorder:
        recorder_bench(a.quick)
    if not a.skip_masking:
        detector_bench()
    log("bench: starting PostgreSQL 15, pgbouncer and pgmoat on loopback")
    pg = Postgres(conf_extra="max_connections = 200\n").start().setup_roles()
    env0 = dict(os.environ, PGHOST="127.0.0.1", PGPORT=str(pg.port), PGUSER="gw_scram", PGPASSWORD="scram-pw",
                PGDATABASE="app", PGSSLMODE="disable")
    subprocess.run([PGBIN + "/pgbench", "-i", "-q", "-s", "10"], env=env0, check=True, capture_output=True)
    pool = 64
    certs = Certs()
    if a.only_relay:
        relay_bench(pg, env0, POLICY, certs, a.time, a.rounds)
        return
    if a.only_jwt:
        jwt_bench(pg, env0, certs, a.time, a.rounds, a.quick)
        return
    bport, bproc = start_pgbouncer(pg, pool)
    conn = [dict(name="main", host="127.0.0.1", port=pg.port, database="app", user="gw_scram",
                 password="env:GW_SCRAM_PW", sslmode="disable", pool=pool)]
    # pgmoat with every control this version has: a read policy with a table allow-list and guardrails
    # (each statement classified, from the parse cache, and decided), read-only upstream, and the record
    # (always on: every statement committed to the audit journal before it is forwarded, with a signed chain).
    policy = POLICY
    gw = Gateway(pg, tls=certs, connections=conn, env={"GW_SCRAM_PW": "scram-pw"}, extra=policy).start()
    user, token = gw.agent("bench-agent", ["bench"])
    # The same gateway without policies (issue 2's figure), to show what the policy costs.
    gw_open = Gateway(pg, tls=certs, connections=conn, env={"GW_SCRAM_PW": "scram-pw"}).start()
    ouser, otoken = gw_open.agent("bench-agent")
    targets = {
        "direct": dict(env0),
        "pgbouncer": dict(env0, PGPORT=str(bport), PGDATABASE="main"),
        "pgmoat": dict(env0, PGPORT=str(gw.port), PGDATABASE="main", PGUSER=user, PGPASSWORD=token),
        "pgmoat-open": dict(env0, PGPORT=str(gw_open.port), PGDATABASE="main", PGUSER=ouser, PGPASSWORD=otoken),
    }
    names = list(targets)
    # the process between pgbench and PostgreSQL, whose CPU per transaction is reported
    middle = {"pgbouncer": int(subprocess.check_output(["pgrep", "-P", str(bproc.pid)]).split()[0])
              if IS_ROOT else bproc.pid, "pgmoat": gw.proc.pid, "pgmoat-open": gw_open.proc.pid}
    # Warm up every target (page cache, backends, pool) so the first measured run is not a cold one.
    for n in names:
        pgbench(targets[n], ["-S", "-c", "8", "-j", "2"], max(2, a.time // 2))
    clients = [int(c) for c in a.clients.split(",")]
    wl = a.workloads.split(",")
    cells = ([("-S -M simple", ["-S", "-M", "simple"], c) for c in clients] if "simple" in wl else []) + \
            ([("-S -M prepared", ["-S", "-M", "prepared"], c) for c in clients] if "prepared" in wl else []) + \
            ([("-S -C (churn)", ["-S", "-C"], 8)] if "churn" in wl else [])
    results = {}
    cpu_med = {}
    for label, args, c in cells:
        key = (label, c)
        results[key] = {n: [] for n in names}
        cpu = {n: [] for n in middle}
        for r in range(a.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for n in order:
                out = pgbench(targets[n], args + ["-c", str(c), "-j", str(min(c, 2))], a.time, middle.get(n))
                if n in middle:
                    cpu[n].append(out[1])
                    out = out[0]
                results[key][n].append(out)
        med = {n: statistics.median(v) for n, v in results[key].items()}
        cpu_med[key] = {n: statistics.median(v) for n, v in cpu.items()}
        log("  %-16s c=%-3d direct %9.0f  pgbouncer %9.0f  pgmoat %9.0f  pgmoat-open %9.0f   pgmoat/pgbouncer %.2f"
            "  pgmoat/direct %.2f  pgmoat/pgmoat-open %.2f"
            % (label, c, med["direct"], med["pgbouncer"], med["pgmoat"], med["pgmoat-open"],
               med["pgmoat"] / med["pgbouncer"], med["pgmoat"] / med["direct"], med["pgmoat"] / med["pgmoat-open"]))
        log("  %-16s       CPU per transaction: pgbouncer %.1f us, pgmoat %.1f us, pgmoat-open %.1f us"
            % ("", cpu_med[key]["pgbouncer"], cpu_med[key]["pgmoat"], cpu_med[key]["pgmoat-open"]))

    log("")
    log("pgbench TPS, median of %d alternated runs of %d s each (2 cores shared by pgbench, servers and PostgreSQL)"
        % (a.rounds, a.time))
    log("pgmoat: read policy with table allow-list and guardrails; pgmoat-open: the same gateway without policies")
    log("| workload | clients | direct | pgbouncer | pgmoat | pgmoat-open | pgmoat/pgbouncer | pgmoat/direct "
        "| pgmoat/pgmoat-open |")
    log("|---|---|---|---|---|---|---|---|---|")
    for (label, c), v in results.items():
        med = {n: statistics.median(x) for n, x in v.items()}
        log("| %s | %d | %.0f | %.0f | %.0f | %.0f | %.2f | %.2f | %.2f |" % (
            label, c, med["direct"], med["pgbouncer"], med["pgmoat"], med["pgmoat-open"],
            med["pgmoat"] / med["pgbouncer"], med["pgmoat"] / med["direct"], med["pgmoat"] / med["pgmoat-open"]))
    m = metrics(gw)
    mo = metrics(gw_open)
    log("")
    log("record: pgmoat committed %d records (%d in pgmoat-open), none refused (%d); SQLite took them in %d "
        "transactions, %d us each on average; at most %d records waited for SQLite"
        % (m.get("pgmoat_audit_records_total", 0), mo.get("pgmoat_audit_records_total", 0),
           m.get("pgmoat_audit_failed_records_total", 0) + mo.get("pgmoat_audit_failed_records_total", 0),
           m.get("pgmoat_audit_commits_total", 0), m.get("pgmoat_audit_commit_us", 0),
           m.get("pgmoat_audit_queue_peak", 0)))
    hits, misses = m.get("pgmoat_parse_cache_hits_total", 0), m.get("pgmoat_parse_cache_misses_total", 0)
    log("")
    log("policy: %d decisions, parse cache hit rate %.2f%% (%d hits, %d misses); per statement: %d ns to "
        "decide, %d ns to parse and classify on a miss (means of 1 in 64, timed in the gateway)"
        % (m.get("pgmoat_policy_decisions_total", 0), 100.0 * hits / max(1, hits + misses), hits, misses,
           m.get("pgmoat_policy_decision_ns", 0), m.get("pgmoat_parse_ns", 0)))
    if not a.skip_masking:
        log("")
        masking_stream(pg, targets, middle, 100000 if a.quick else 1000000, 1 if a.quick else 3)
    if not a.skip_relay:
        log("")
        relay_bench(pg, env0, policy, certs, a.time, a.rounds)
    if not a.skip_jwt:
        log("")
        jwt_bench(pg, env0, certs, a.time, a.rounds, a.quick)
    if not a.skip_idle:
        log("")
        log("idle sessions: opening %d TLS sessions through pgmoat" % a.idle)
        base, after, per = idle_sessions(gw, user, token, a.idle)
        log("pgmoat RSS: %d KiB before, %d KiB with %d idle TLS sessions: %.1f KiB per session"
            % (base, after, a.idle, per))
    gw.stop()
    gw_open.stop()
    log("bench: done")


if __name__ == "__main__":
    main()
