"""Test harness: a real PostgreSQL 15, the real gateway, real clients.

Everything a test starts is stopped by pid in a finally/atexit, even when the
test fails. Used with Debian's /usr/bin/python3 (psycopg 3 from python3-psycopg).
"""
import atexit
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
import urllib.error

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, os.environ.get("PGMOAT_BUILD", "build"))
PGMOAT = os.path.join(BUILD, "pgmoat")
PGBIN = "/usr/lib/postgresql/15/bin"
IS_ROOT = os.geteuid() == 0

_cleanups = []


def at_exit(fn):
    _cleanups.append(fn)
    return fn


@atexit.register
def _run_cleanups():
    """Run every cleanup (newest first); return the messages of those that failed."""
    errors = []
    while _cleanups:
        fn = _cleanups.pop()
        try:
            fn()
        except Exception as e:  # a sanitizer report from Gateway.stop() lands here
            errors.append("%s: %s" % (getattr(fn, "__qualname__", fn), e))
    return errors


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


_port_rng = random.Random(os.urandom(16))  # not the tests' random: a seeded one would repeat ports


def free_port():
    """A loopback port nothing listens on, chosen below the kernel's ephemeral range: a port the kernel hands
    out (bind to 0) can be taken again by any outgoing connection before the server binds it."""
    lo, _ = _ephemeral_range()
    first = 20000 if lo > 21000 else 1024
    last = lo - 1 if lo > 21000 else 19999
    for _ in range(200):
        port = _port_rng.randint(first, last)
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=15.0, host="127.0.0.1", proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("process exited with %s before listening on %d" % (proc.returncode, port))
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listening on %s:%d after %.0fs" % (host, port, timeout))


def make_tempdir(prefix):
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o755)
    at_exit(lambda: shutil.rmtree(d, ignore_errors=True))
    return d


def as_postgres(cmd):
    """Run a server-side binary as the postgres OS user when we are root."""
    if IS_ROOT:
        return ["runuser", "-u", "postgres", "--"] + cmd
    return cmd


class Certs:
    """A test CA and a server certificate for localhost/127.0.0.1, made with the openssl CLI."""

    def __init__(self, d=None):
        self.dir = d or make_tempdir("pgmoat-certs-")
        self.ca = os.path.join(self.dir, "ca.crt")
        self.ca_key = os.path.join(self.dir, "ca.key")
        self.cert = os.path.join(self.dir, "server.crt")
        self.key = os.path.join(self.dir, "server.key")
        run = lambda *a: subprocess.run(a, check=True, capture_output=True)
        run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", self.ca_key, "-out", self.ca, "-days", "2", "-subj", "/CN=pgmoat test CA")
        csr = os.path.join(self.dir, "server.csr")
        run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", self.key, "-out", csr, "-subj", "/CN=localhost")
        ext = os.path.join(self.dir, "ext.cnf")
        with open(ext, "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
        run("openssl", "x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key, "-CAcreateserial",
            "-out", self.cert, "-days", "2", "-extfile", ext)
        for p in (self.key, self.ca_key):
            os.chmod(p, 0o600)


class Postgres:
    """A throwaway PostgreSQL 15 cluster on a free loopback port."""

    SUPERUSER = "postgres"

    def __init__(self, ssl_certs=None, hba_extra="", conf_extra=""):
        self.dir = make_tempdir("pgmoat-pg-")
        self.data = os.path.join(self.dir, "data")
        self.sock = self.dir
        self.port = free_port()
        self.host = "127.0.0.1"
        self.ssl_certs = ssl_certs
        self.hba_extra = hba_extra
        self.conf_extra = conf_extra
        self.pid = None
        if IS_ROOT:
            shutil.chown(self.dir, "postgres", "postgres")

    def start(self):
        pw = os.path.join(self.dir, "pw")
        with open(pw, "w") as f:
            f.write("postgres\n")
        if IS_ROOT:
            shutil.chown(pw, "postgres", "postgres")
        subprocess.run(as_postgres([PGBIN + "/initdb", "-D", self.data, "-U", self.SUPERUSER, "-A", "trust",
                                    "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"]),
                       check=True, capture_output=True)
        conf = os.path.join(self.data, "postgresql.conf")
        with open(conf, "a") as f:
            f.write("listen_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\n"
                    "max_connections = 300\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                    "shared_buffers = 128MB\nlog_min_messages = warning\nlc_messages = 'C'\n"
                    % (self.port, self.sock))
            if self.ssl_certs:
                for src, name in ((self.ssl_certs.cert, "server.crt"), (self.ssl_certs.key, "server.key")):
                    dst = os.path.join(self.data, name)
                    shutil.copy(src, dst)
                    os.chmod(dst, 0o600)
                    if IS_ROOT:
                        shutil.chown(dst, "postgres", "postgres")
                f.write("ssl = on\n")
            f.write(self.conf_extra)
        hba = os.path.join(self.data, "pg_hba.conf")
        with open(hba, "w") as f:
            f.write("local all all trust\n")
            f.write(self.hba_extra)
            f.write("host all gw_plain 127.0.0.1/32 password\n")
            f.write("host all gw_md5 127.0.0.1/32 md5\n")
            f.write("host all all 127.0.0.1/32 scram-sha-256\n")
        log = os.path.join(self.dir, "log")
        if IS_ROOT:
            open(log, "a").close()
            shutil.chown(log, "postgres", "postgres")
        subprocess.run(as_postgres([PGBIN + "/pg_ctl", "-D", self.data, "-l", log, "-w", "-t", "60", "start"]),
                       check=True, capture_output=True)
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            self.pid = int(f.readline())
        at_exit(self.stop)
        self.sql("ALTER SYSTEM SET password_encryption = 'scram-sha-256'")
        return self

    def stop(self):
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGINT)  # fast shutdown
            except ProcessLookupError:
                pass
            for _ in range(200):
                try:
                    os.kill(self.pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
            else:
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.pid = None

    def psql_args(self, db="postgres", user=None):
        return ["psql", "-X", "-h", self.sock, "-p", str(self.port), "-U", user or self.SUPERUSER, "-d", db]

    def sql(self, query, db="postgres", check=True):
        r = subprocess.run(self.psql_args(db) + ["-v", "ON_ERROR_STOP=1", "-qAt", "-c", query],
                           capture_output=True, text=True)
        if check and r.returncode != 0:
            raise RuntimeError("psql failed: %s" % r.stderr)
        return r.stdout.strip()

    def sql_file(self, path, db="postgres"):
        r = subprocess.run(self.psql_args(db) + ["-v", "ON_ERROR_STOP=1", "-q", "-f", path],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("psql -f %s failed: %s" % (path, r.stderr))

    def setup_roles(self, db="app"):
        """The standard test database and upstream roles (scram, md5, password)."""
        self.sql("CREATE DATABASE %s" % db)
        self.sql("SET password_encryption='scram-sha-256'; CREATE ROLE gw_scram LOGIN PASSWORD 'scram-pw'")
        self.sql("SET password_encryption='md5'; CREATE ROLE gw_md5 LOGIN PASSWORD 'md5-pw'")
        self.sql("SET password_encryption='scram-sha-256'; CREATE ROLE gw_plain LOGIN PASSWORD 'plain-pw'")
        for r in ("gw_scram", "gw_md5", "gw_plain"):
            self.sql("GRANT ALL ON DATABASE %s TO %s" % (db, r))
            self.sql("GRANT ALL ON SCHEMA public TO %s" % r, db=db)
        return self


class _Logged:
    """A process of ours writing its log to self.log, stopped by pid (self.proc)."""

    MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")
    WHAT = "process"

    def read_log(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def _end(self, sig):
        """Signal it, wait (then kill); returns its exit code."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def stop(self, sig=signal.SIGTERM):
        rc = self._end(sig)
        self.proc = None
        log = self.read_log()
        for marker in self.MARKERS:
            if marker in log:
                raise AssertionError("%s reported %r; log:\n%s" % (self.WHAT, marker, log[-6000:]))
        return rc


class Gateway(_Logged):
    """build/pgmoat serve with a generated config."""

    MARKERS = _Logged.MARKERS + ("pgmoat: fatal:",)
    WHAT = "gateway"

    def __init__(self, pg=None, connections=None, tls=None, plaintext_loopback=True, extra="", workers=None,
                 db="app", env=None, relay_listener=False, tls_extra=()):
        """tls_extra: more tls: lines, such as ["client_ca: file:CA", "crl: file:CRL"]."""
        self.dir = make_tempdir("pgmoat-gw-")
        self.port = free_port()
        self.http_port = free_port()
        self.relay_port = free_port() if relay_listener else None
        self.admin_token = "adm-" + os.urandom(16).hex()
        self.certs = tls
        self.proc = None
        self.log = os.path.join(self.dir, "gateway.log")
        self.env = dict(os.environ, PGMOAT_ADMIN_TOKEN=self.admin_token,
                        ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0",
                        UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1", **(env or {}))
        if connections is None:
            connections = [dict(name="main", host="127.0.0.1", port=pg.port, database=db, user="gw_scram",
                                password="env:GW_SCRAM_PW", sslmode="disable")]
            self.env["GW_SCRAM_PW"] = "scram-pw"
        lines = ["listen:", "  postgres: \"127.0.0.1:%d\"" % self.port, "  http: \"127.0.0.1:%d\"" % self.http_port]
        if self.relay_port:
            lines.append("  relay: \"127.0.0.1:%d\"" % self.relay_port)
        lines.append("tls:")
        if tls:
            lines += ["  cert: file:%s" % tls.cert, "  key: file:%s" % tls.key]
        lines += ["  " + x for x in tls_extra]
        lines += ["  allow_plaintext_loopback: %s" % ("true" if plaintext_loopback else "false"),
                  "state: \"sqlite:%s/state.db\"" % self.dir,
                  "admin_token: env:PGMOAT_ADMIN_TOKEN",
                  "admins: [group:dba]"]
        if workers:
            lines += ["limits:", "  workers: %d" % workers]
        lines.append("connections:")
        for c in connections:
            lines.append("  - name: %s" % c["name"])
            for k, v in c.items():
                if k == "name":
                    continue
                if k == "pool":
                    lines.append("    pool: {size: %d}" % v)
                else:
                    lines.append("    %s: %s" % (k, json.dumps(v) if isinstance(v, str) and ":" not in v else v))
        self.config_text = "\n".join(lines) + "\n" + extra
        self.config = os.path.join(self.dir, "pgmoat.yaml")
        with open(self.config, "w") as f:
            f.write(self.config_text)

    def start(self):
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen([PGMOAT, "serve", "-c", self.config], stdout=logf, stderr=logf, env=self.env)
        logf.close()
        at_exit(self.stop)
        try:
            wait_port(self.port, proc=self.proc)
            wait_port(self.http_port, proc=self.proc)
        except Exception:
            raise RuntimeError("gateway did not start:\n" + self.read_log())
        return self

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.http_port

    def api(self, method, path, body=None, token=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", "Bearer " + (token or self.admin_token))
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def add_identity(self, name, kind="agent", groups=()):
        st, body = self.api("POST", "/v1/identities", {"name": name, "kind": kind, "groups": list(groups)})
        assert st == 201, (st, body)
        return body

    def issue_token(self, identity, ttl=None):
        body = {"identity": identity}
        if ttl:
            body["ttl"] = ttl
        st, out = self.api("POST", "/v1/tokens", body)
        assert st == 201, (st, out)
        return out["token"]

    def agent(self, name="agent-1", groups=()):
        """An identity with a fresh token: returns (name, token)."""
        self.add_identity(name, groups=groups)
        return name, self.issue_token(name)

    def dsn(self, user, password, dbname="main", sslmode=None, **kw):
        if sslmode is None:
            sslmode = "require" if self.certs else "disable"
        parts = dict(host="127.0.0.1", port=self.port, dbname=dbname, user=user, password=password,
                     sslmode=sslmode, **kw)
        if self.certs and sslmode in ("verify-ca", "verify-full"):
            parts.setdefault("sslrootcert", self.certs.ca)
        return " ".join("%s=%s" % (k, _quote(v)) for k, v in parts.items())

    def cli(self, *args, token=None, check=True, input=None):
        env = dict(os.environ, PGMOAT_GATEWAY=self.url, PGMOAT_TOKEN=token or self.admin_token)
        r = subprocess.run([PGMOAT] + list(args), capture_output=True, text=True, env=env, input=input, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError("pgmoat %s failed (%d): %s" % (" ".join(args), r.returncode, r.stderr))
        return r


class Relay(_Logged):
    """build/pgmoat relay with a generated relay.yaml, dialing out to a Gateway's listen.relay."""

    WHAT = "relay"

    def __init__(self, gw, name, token, targets, ca=None, server_name="localhost", tunnels=4, extra="", env=None):
        self.dir = make_tempdir("pgmoat-relay-")
        self.gw = gw
        self.name = name
        self.proc = None
        self.log = os.path.join(self.dir, "relay.log")
        self.token_file = os.path.join(self.dir, "relay.token")
        with open(self.token_file, "w") as f:
            f.write(token + "\n")
        os.chmod(self.token_file, 0o600)
        self.env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0",
                        UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1", **(env or {}))
        lines = ["gateway: {address: \"127.0.0.1:%d\", ca: file:%s, server_name: %s}"
                 % (gw.relay_port, ca or gw.certs.ca, server_name),
                 "name: %s" % name, "token: file:%s" % self.token_file, "tunnels: %d" % tunnels, "targets:"]
        for t in targets:
            lines.append("  - {%s}" % ", ".join("%s: %s" % (k, "{size: %d}" % v if k == "pool" else
                                                            json.dumps(v) if isinstance(v, str) and ":" not in v
                                                            else v) for k, v in t.items()))
        self.config = os.path.join(self.dir, "relay.yaml")
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n" + extra)

    def start(self, wait=True):
        before = self.logins()
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen([PGMOAT, "relay", "-c", self.config], stdout=logf, stderr=logf, env=self.env)
        logf.close()
        at_exit(self.stop)
        if wait:
            self.wait_logged_in(after=before)
        return self

    def logins(self):
        return self.read_log().count("logged in to gateway")

    def wait_logged_in(self, timeout=15.0, after=0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.logins() > after:
                return
            if self.proc.poll() is not None:
                raise RuntimeError("relay exited (%s):\n%s" % (self.proc.returncode, self.read_log()))
            time.sleep(0.05)
        raise RuntimeError("relay did not log in to the gateway within %.0fs:\n%s" % (timeout, self.read_log()))

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def _quote(v):
    v = str(v)
    if v == "" or any(c in v for c in " '\\"):
        return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return v


def psql(dsn, sql=None, file=None, args=(), input=None, check=False, timeout=120, env=None):
    cmd = ["psql", "-X", dsn] + list(args)
    if sql is not None:
        cmd += ["-c", sql]
    if file is not None:
        cmd += ["-f", file]
    e = dict(os.environ, PGCONNECT_TIMEOUT="10", **(env or {}))
    r = subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=timeout, env=e)
    if check and r.returncode != 0:
        raise AssertionError("psql failed (%d): %s" % (r.returncode, r.stderr))
    return r


# ---- a tiny test runner: each module runs its test_* functions in order ----

_shared = {}


def shared_postgres():
    """One cluster per test module (started lazily, stopped at exit)."""
    if "pg" not in _shared:
        _shared["pg"] = Postgres().start().setup_roles()
    return _shared["pg"]


def main(module_globals):
    name = os.path.splitext(os.path.basename(module_globals["__file__"]))[0]
    only = os.environ.get("PGMOAT_TEST_ONLY")
    tests = [(k, v) for k, v in module_globals.items() if k.startswith("test_") and callable(v)]
    passed = failed = 0
    setup = module_globals.get("setup_module")
    try:
        if setup:
            setup()
    except Exception:
        print("FAIL %s::setup_module\n%s" % (name, _indent(traceback.format_exc())), flush=True)
        print("RESULT %d %d" % (0, len(tests)), flush=True)
        _run_cleanups()
        sys.exit(1)
    for tname, fn in tests:
        if only and only not in tname:
            continue
        t0 = time.time()
        try:
            fn()
            passed += 1
            print("ok   %s::%s (%.2fs)" % (name, tname, time.time() - t0), flush=True)
        except Exception:
            failed += 1
            print("FAIL %s::%s (%.2fs)\n%s" % (name, tname, time.time() - t0, _indent(traceback.format_exc())),
                  flush=True)
    for err in _run_cleanups():
        failed += 1
        print("FAIL %s::cleanup\n%s" % (name, _indent(err)), flush=True)
    print("RESULT %d %d" % (passed, failed), flush=True)
    sys.exit(1 if failed else 0)


def _indent(s):
    return "\n".join("     " + line for line in s.rstrip().splitlines())


# ---- a real OpenID provider (tests/oidc/provider.mjs: oidc-provider from npm) ----

OIDC_DIR = os.path.join(ROOT, "tests", "oidc")


def jwt_claims(token):
    """The payload of a JWT, decoded without verifying it (to look at what a provider issued)."""
    import base64
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


class OidcProvider(_Logged):
    """One issuer on loopback over HTTPS (a certificate of certs' CA), started with node.

    clients: [{"client_id", "client_secret", "grant": "client_credentials", "claims": {...}, "access_token_ttl"}]
             or {"client_id", "grant": "device_code"}; accounts: {login: {"password", "claims": {...}}}.
    Other provider.mjs config keys go in **cfg (audience, alg, access_token_ttl, device_interval,
    device_code_ttl, jwks_max_age). See tests/oidc/provider.mjs.
    """

    def __init__(self, certs, clients=(), accounts=None, host="127.0.0.1", **cfg):
        self.dir = make_tempdir("pgmoat-oidc-")
        self.certs = certs
        self.admin_token = "op-" + os.urandom(16).hex()
        self.cfg = dict(cert=certs.cert, key=certs.key, host=host, admin_token=self.admin_token,
                        clients=list(clients), accounts=accounts or {}, **cfg)
        self.config = os.path.join(self.dir, "provider.json")
        with open(self.config, "w") as f:
            json.dump(self.cfg, f)
        self.log = os.path.join(self.dir, "provider.log")
        self.proc = None
        self.issuer = None
        self.port = None

    def start(self, timeout=30.0):
        import select
        node = shutil.which("node")
        if not node or not os.path.isdir(os.path.join(OIDC_DIR, "node_modules", "oidc-provider")):
            raise RuntimeError("the test OpenID provider needs node and tests/oidc/node_modules "
                               "(sh tests/oidc/setup.sh, which make test runs)")
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen([node, os.path.join(OIDC_DIR, "provider.mjs"), self.config],
                                     stdout=subprocess.PIPE, stderr=logf, cwd=OIDC_DIR)
        logf.close()
        at_exit(self.stop)
        deadline = time.time() + timeout
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.time()
            if left <= 0 or self.proc.poll() is not None:
                raise RuntimeError("OpenID provider did not start:\n" + self.read_log())
            r, _, _ = select.select([self.proc.stdout], [], [], min(left, 0.5))
            if r:
                ch = os.read(self.proc.stdout.fileno(), 1)
                if not ch:
                    raise RuntimeError("OpenID provider exited:\n" + self.read_log())
                line += ch
        ready = json.loads(line)
        self.issuer, self.port = ready["issuer"], ready["port"]
        return self

    def stop(self):
        self._end(signal.SIGTERM)
        if self.proc:
            self.proc.stdout.close()
        self.proc = None

    def _ssl(self):
        import ssl
        return ssl.create_default_context(cafile=self.certs.ca)

    def post_form(self, path, form, auth=None):
        """POST an urlencoded form; returns (status, JSON answer)."""
        import urllib.parse
        req = urllib.request.Request(self.issuer + path, data=urllib.parse.urlencode(form).encode(), method="POST")
        if auth:
            import base64
            req.add_header("Authorization", "Basic " + base64.b64encode(("%s:%s" % auth).encode()).decode())
        try:
            with urllib.request.urlopen(req, timeout=10, context=self._ssl()) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def client_credentials(self, client_id, secret, **form):
        """An agent's access token (a JWT) from the client-credentials grant, as a plain HTTP POST."""
        st, out = self.post_form("/token", dict(grant_type="client_credentials", **form), auth=(client_id, secret))
        assert st == 200, (st, out)
        return out["access_token"]

    def admin(self, method, path):
        req = urllib.request.Request(self.issuer + path, method=method, data=b"" if method == "POST" else None)
        req.add_header("Authorization", "Bearer " + self.admin_token)
        with urllib.request.urlopen(req, timeout=10, context=self._ssl()) as r:
            return json.loads(r.read())

    def rotate(self):
        """A new signing key becomes current; the old ones stay published. Returns {current, published}."""
        return self.admin("POST", "/_admin/rotate")

    def retire(self):
        """Only the current key stays published."""
        return self.admin("POST", "/_admin/retire")

    def jwks_fetches(self):
        return self.admin("GET", "/_admin/stats")["jwks_fetches"]

    def approve_device(self, url, login, password, deny=False):
        """Do what a person does in a browser for a device code: open url (verification_uri_complete),
        confirm the code, sign in, consent (or deny). Plain HTTP with a cookie jar on the provider's own
        pages. Returns the last page's HTML."""
        import http.cookiejar
        import html
        import re
        import urllib.parse
        jar = http.cookiejar.CookieJar()
        op = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar),
                                         urllib.request.HTTPSHandler(context=self._ssl()))

        def forms(page):
            out = []
            for m in re.finditer(r"<form\b([^>]*)>(.*?)</form>", page, re.S):
                action = re.search(r'action="([^"]*)"', m.group(1))
                fields = {}
                for im in re.finditer(r"<input\b([^>]*)>", m.group(2)):
                    n = re.search(r'name="([^"]*)"', im.group(1))
                    v = re.search(r'value="([^"]*)"', im.group(1))
                    if n:
                        fields[html.unescape(n.group(1))] = html.unescape(v.group(1)) if v else ""
                out.append((html.unescape(action.group(1)) if action else "", fields))
            return out

        r = op.open(url, timeout=10)
        page = r.read().decode()
        denied = False
        for _ in range(10):
            fs = forms(page)
            if not fs or denied:
                return page
            by_end = {a.rsplit("/", 1)[-1]: (a, f) for a, f in fs}
            if "login" in by_end:
                action, fields = by_end["login"][0], {"login": login, "password": password}
            elif "abort" in by_end and deny:
                action, fields, denied = by_end["abort"][0], {}, True
            elif "confirm" in by_end:
                action, fields = by_end["confirm"][0], {}
            else:  # the provider's device pages: the code's form, then its confirmation
                action, fields = fs[0]
                if deny and "confirm" in fields:
                    fields = dict(fields, abort="yes")
                    fields.pop("confirm")
                    denied = True
            r = op.open(urllib.request.Request(urllib.parse.urljoin(r.url, action),
                                               data=urllib.parse.urlencode(fields).encode()), timeout=10)
            page = r.read().decode()
        raise AssertionError("the provider's pages did not end:\n" + page[-2000:])
