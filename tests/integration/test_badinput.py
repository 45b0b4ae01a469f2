#!/usr/bin/python3
"""Bad input (issue 2): at least 10,000 random and mutated startup and protocol messages.

Several threads open raw sockets to the gateway and send, seeded (the seed is printed; set
PGMOAT_FUZZ_SEED to replay):

- before login: zero, negative (high bit), huge and truncated lengths; garbage bytes; valid
  startup packets with mutated bytes; SSLRequest followed by garbage, by plaintext, or by a TLS
  handshake that never finishes (a partial or a lone ClientHello, then silence); GSSENCRequest;
  CancelRequest with random keys; startup packets with thousands of parameters or missing
  terminators; password messages that are huge, malformed or of the wrong type;
- after a real login (done by hand on the socket, plaintext or TLS): messages out of order (Bind
  before Parse, Execute of an unknown portal, CopyData outside COPY, Sync storms), random
  extended-protocol sequences with mutated bodies, COPY fed with garbage, unknown message types,
  lengths of 0..3 and over limits.max_message_size, truncated messages followed by a close, random
  bytes, and legal messages larger than the gateway's 1 MiB read buffer.
Some sends are dribbled in small pieces so that every message boundary is also split.

Besides "no crash, no hang, no leak", specific expectations: a 10001-byte startup packet gets FATAL
08P01 (10000 is accepted); a byte right after SSLRequest is refused; a huge length after login gets
FATAL 08P01 naming the limit; stalled TLS handshakes are closed by the auth timeout; a refused message
never lands inside a half-streamed DataRow; statements sent before Terminate still run; startup
parameter values cannot break out of the SQL literal the gateway applies them with; nothing a client
sends can start a line of the gateway's log; a shutdown with sessions in flight is clean.

Every connection must end with a FATAL ErrorResponse or a close, never a hang: each socket is
watched, and one that stays open past limits.auth_timeout (2 s here) plus a margin fails the test.
Meanwhile psycopg keeps running SELECT 1 through the gateway on a persistent connection and on new
connections, and every one of those must succeed. At the end the gateway is still running and
stops cleanly (Gateway.stop() fails on any ASan/UBSan/LSan report in its log).
"""
import os
import queue
import random
import re
import selectors
import socket
import ssl
import struct
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import Certs, Gateway, Postgres, main  # noqa: E402

import psycopg  # noqa: E402

PROTO = 196608
SSL_REQ = 80877103
GSS_REQ = 80877104
CANCEL_REQ = 80877102
MAX_STARTUP = 10000           # the gateway's default limits.max_startup_size
MAX_PASSWORD = 20000          # client.c MAX_PASSWORD_MSG
MAX_MSG = 16 * 1024 * 1024    # limits.max_message_size set below
AUTH_TIMEOUT = 2.0
SLACK = 3.0                   # tick (100 ms) + scheduling on two shared cores under ASan
IO_TIMEOUT = 15.0             # a reply that a logged-in session owes us
MIN_MESSAGES = 10000
TARGET_MESSAGES = int(os.environ.get("PGMOAT_FUZZ_MESSAGES", "30000"))
MAX_FUZZ_SECONDS = float(os.environ.get("PGMOAT_FUZZ_SECONDS", "60"))
WORKERS = 6
FRONTEND_TYPES = b"XQFSEPBDCHdcfp"   # 'p' is a frontend type, but not after login

S = {}


# ---------------------------------------------------------------- wire helpers

def u32(v):
    return struct.pack("!I", v & 0xffffffff)


def msg(t, body=b""):
    return bytes([t]) + u32(len(body) + 4) + body


def cstr(s):
    return (s.encode() if isinstance(s, str) else s) + b"\0"


def startup(params, proto=PROTO):
    body = u32(proto) + b"".join(cstr(k) + cstr(v) for k, v in params) + b"\0"
    return u32(len(body) + 4) + body


def ssl_request():
    return u32(8) + u32(SSL_REQ)


def gss_request():
    return u32(8) + u32(GSS_REQ)


def cancel(pid, key):
    return u32(16) + u32(CANCEL_REQ) + u32(pid) + u32(key)


def password(tok):
    return msg(ord("p"), cstr(tok))


def query(sql):
    return msg(ord("Q"), cstr(sql))


def parse(name, sql, types=()):
    return msg(ord("P"), cstr(name) + cstr(sql) + struct.pack("!H", len(types)) +
               b"".join(u32(t) for t in types))


def bind(portal, stmt, params=(), fmts=(), rfmts=()):
    b = cstr(portal) + cstr(stmt) + struct.pack("!H", len(fmts)) + b"".join(struct.pack("!H", f) for f in fmts)
    b += struct.pack("!H", len(params))
    for p in params:
        b += u32(0xffffffff) if p is None else u32(len(p)) + p
    b += struct.pack("!H", len(rfmts)) + b"".join(struct.pack("!H", f) for f in rfmts)
    return msg(ord("B"), b)


def describe(kind, name):
    return msg(ord("D"), kind + cstr(name))


def execute(portal, maxrows=0):
    return msg(ord("E"), cstr(portal) + u32(maxrows))


def close_msg(kind, name):
    return msg(ord("C"), kind + cstr(name))


SYNC = msg(ord("S"))
FLUSH = msg(ord("H"))
TERMINATE = msg(ord("X"))


def parse_backend(buf):
    """Split the gateway's output into (type, body) messages; returns (msgs, rest)."""
    out = []
    i = 0
    while len(buf) - i >= 5:
        n = struct.unpack_from("!I", buf, i + 1)[0]
        if n < 4:
            raise AssertionError("the gateway sent a message with length %d (type %r)" % (n, chr(buf[i])))
        if len(buf) - i < 1 + n:
            break
        out.append((chr(buf[i]), bytes(buf[i + 5:i + 1 + n])))
        i += 1 + n
    return out, bytes(buf[i:])


def fields(body):
    f = {}
    for part in body.split(b"\0"):
        if part:
            f[chr(part[0])] = part[1:].decode("utf-8", "replace")
    return f


def fatal_of(msgs):
    for t, b in msgs:
        if t == "E":
            f = fields(b)
            if f.get("S") == "FATAL":
                return f
    return None


def auth_code(msgs):
    """The first authentication request's code."""
    for t, b in msgs:
        if t == "R" and len(b) >= 4:
            return struct.unpack("!I", b[:4])[0]
    return None


def auth_ok(msgs):
    return any(t == "R" and b[:4] == b"\0\0\0\0" for t, b in msgs)


def rand_bytes(rng, n):
    return bytes(rng.getrandbits(8) for _ in range(n))


def mutate(rng, data, rounds=None):
    b = bytearray(data)
    for _ in range(rounds or rng.randint(1, 4)):
        if not b:
            b.append(rng.randrange(256))
            continue
        i = rng.randrange(len(b))
        op = rng.randrange(8)
        if op == 0:
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            b[i] = rng.randrange(256)
        elif op == 2:
            b[i:i] = rand_bytes(rng, rng.randint(1, 16))
        elif op == 3:
            del b[i:i + rng.randint(1, 16)]
        elif op == 4:
            j = rng.randrange(len(b))
            b[i:i] = b[j:j + rng.randint(1, 32)]
        elif op == 5:
            b[i] = rng.choice((0, 0xff, 0x7f, 0x80, ord("="), ord("\\"), ord(" ")))
        elif op == 6:
            del b[i:]
        else:
            b[i:i] = b"\0"
    return bytes(b)


def fix_untyped(b):
    return u32(len(b)) + b[4:] if len(b) >= 4 else b


def fix_typed(b):
    return b[:1] + u32(len(b) - 1) + b[5:] if len(b) >= 5 else b


def odd_length(rng):
    return rng.choice([0, 1, 2, 3, rng.randint(0, 7), 0x80000000 | rng.getrandbits(31), 0xffffffff,
                       0x7fffffff, MAX_STARTUP + 1, rng.randint(MAX_STARTUP + 1, 0x7fffffff)])


def src_addr(rng):
    """A loopback source address other than 127.0.0.1 (the monitor's), so that the failed logins
    sent here spread over many rate-limit buckets and never block the monitor or the logins the
    fuzzers need."""
    while True:
        ip = "127.%d.%d.%d" % (rng.randrange(256), rng.randrange(256), rng.randrange(1, 255))
        if ip != "127.0.0.1":
            return ip


def dribble(sock, data, rng):
    """Send the first bytes in small pieces (separate TCP segments, separate TLS records), so that
    the gateway sees every message boundary at every possible split; then the rest at once."""
    head, tail = data[:rng.randint(1, 300)], data
    i = 0
    while i < len(head):
        n = rng.randint(1, 16)
        sock.sendall(head[i:i + n])
        i += n
        if rng.random() < 0.1:
            time.sleep(0.002)
    if len(tail) > len(head):
        sock.sendall(tail[len(head):])


def dial(src=None, timeout=10.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if src:
            s.bind((src, 0))
        s.settimeout(timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.connect(("127.0.0.1", S["gw"].port))
    except Exception:
        s.close()
        raise
    return s


def client_hello():
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    o = S["tls_ctx"].wrap_bio(inc, out, server_hostname="localhost")
    try:
        o.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


class Hang(AssertionError):
    pass


class Wire:
    """Synchronous reading of a logged-in or TLS connection, every read bounded by a timeout."""

    def __init__(self, sock, rng=None):
        self.sock = sock
        self.rng = rng      # when set, some sends are dribbled
        self.buf = b""
        self.eof = False
        self.raw = False

    def half_close(self):
        """No more data from us. On TLS, Python drops the TLS layer here: what follows is not parsed."""
        self.raw = isinstance(self.sock, ssl.SSLSocket)
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:   # already reset by the gateway
            pass

    def send(self, data):
        """A send that fails because the gateway closed is not an error here: what the gateway
        said before closing is read next, and a session that should have stayed open shows up as
        closed there."""
        try:
            if self.rng and self.rng.random() < 0.15:
                dribble(self.sock, data, self.rng)
            else:
                self.sock.sendall(data)
        except (ConnectionError, ssl.SSLError):
            pass

    def read(self, until, timeout=IO_TIMEOUT, what="a reply"):
        deadline = time.monotonic() + timeout
        msgs = []
        while True:
            if not self.raw:
                got, self.buf = parse_backend(self.buf)
                msgs += got
            if until(msgs) or self.eof:
                return msgs
            left = deadline - time.monotonic()
            if left <= 0:
                raise Hang("no %s within %.0fs (got %s)" % (what, timeout, [t for t, _ in msgs][-20:]))
            self.sock.settimeout(left)
            try:
                d = self.sock.recv(262144)
            except socket.timeout:
                continue
            except (ConnectionError, ssl.SSLError, OSError):
                d = b""
            if not d:
                self.eof = True
            self.buf += d

    def read_to_eof(self, timeout=IO_TIMEOUT, what="close"):
        return self.read(lambda m: False, timeout, what)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def until_z(n=1):
    return lambda m: sum(1 for t, _ in m if t == "Z") >= n or fatal_of(m) is not None


# ---------------------------------------------------------------- bookkeeping

class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.messages = 0
        self.connections = 0
        self.kinds = {}
        self.failures = []

    def count(self, kind, nmsgs, nconn=1):
        with self.lock:
            self.messages += nmsgs
            self.connections += nconn
            k = self.kinds.setdefault(kind, [0, 0])
            k[0] += 1
            k[1] += nmsgs

    def fail(self, kind, detail):
        with self.lock:
            self.failures.append("%s: %s" % (kind, detail))


class Watched:
    __slots__ = ("sock", "kind", "check", "opened", "deadline", "min_close", "buf", "raw", "zs", "sent_q",
                 "sample")

    def __init__(self, sock, kind, check, opened, raw, min_close, initial, sample):
        self.sock, self.kind, self.check, self.opened = sock, kind, check, opened
        self.deadline = opened + AUTH_TIMEOUT + SLACK
        self.min_close, self.raw, self.buf, self.sample = min_close, raw, initial, sample
        self.zs = 0
        self.sent_q = False


class Watcher(threading.Thread):
    """Owns sockets sent to before login: each must be closed by the gateway before its deadline
    (auth timeout + margin from connect), and what came before the close must pass its check.
    A connection that did log in gets SELECT 1, then Terminate."""

    def __init__(self, stats):
        super().__init__(daemon=True)
        self.stats = stats
        self.q = queue.Queue()
        self.sel = selectors.DefaultSelector()
        self.open = set()
        self.done = threading.Event()
        self.stopping = False
        self.closed_by_timeout = 0
        self.watched = 0

    def add(self, sock, kind, check, opened, raw=False, min_close=None, initial=b"", sample=b""):
        self.q.put(Watched(sock, kind, check, opened, raw, min_close, initial, sample))

    def run(self):
        last_sweep = 0.0
        while True:
            while True:
                try:
                    w = self.q.get_nowait()
                except queue.Empty:
                    break
                w.sock.setblocking(False)
                self.sel.register(w.sock, selectors.EVENT_READ, w)
                self.open.add(w)
                self.watched += 1
            if self.stopping and not self.open and self.q.empty():
                break
            for key, _ in self.sel.select(0.05):
                w = key.data
                try:
                    d = w.sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    d = b""
                if d:
                    w.buf += d
                    self.react(w)
                else:
                    self.finish(w)
            now = time.monotonic()
            if now - last_sweep > 0.1:
                last_sweep = now
                for w in [w for w in self.open if now > w.deadline]:
                    self.stats.fail(w.kind, "connection still open %.1fs after connect (auth timeout %.0fs); "
                                    "got %r; sent %s" % (now - w.opened, AUTH_TIMEOUT, w.buf[:80], w.sample))
                    self.drop(w)
        self.done.set()

    def react(self, w):
        if w.raw:
            return
        try:
            msgs, _ = parse_backend(w.buf)
        except AssertionError as e:
            self.stats.fail(w.kind, "%s; sent %s" % (e, w.sample))
            self.drop(w)
            return
        zs = sum(1 for t, _ in msgs if t == "Z")
        if zs > w.zs:
            w.zs = zs
            try:
                w.sock.send(query("SELECT 1") if not w.sent_q else TERMINATE)
            except OSError:
                pass
            w.sent_q = True

    def finish(self, w):
        elapsed = time.monotonic() - w.opened
        err = None
        try:
            if w.min_close is not None and elapsed < w.min_close:
                err = "closed after %.2fs, before the auth timeout" % elapsed
            elif w.raw:
                err = w.check(None, w.buf, elapsed) if w.check else None
            else:
                msgs, rest = parse_backend(w.buf)
                err = w.check(msgs, rest, elapsed)
        except AssertionError as e:
            err = str(e)
        if err:
            self.stats.fail(w.kind, "%s; sent %s; got %r" % (err, w.sample, w.buf[:300]))
        if elapsed >= AUTH_TIMEOUT - 0.3:
            self.closed_by_timeout += 1
        self.drop(w)

    def drop(self, w):
        self.open.discard(w)
        try:
            self.sel.unregister(w.sock)
        except (KeyError, ValueError):
            pass
        w.sock.close()


# ---------------------------------------------------------------- checks

def check_any(msgs, rest, elapsed):
    """Any outcome but a hang: whole messages only (no close in the middle of one); if a FATAL came,
    it is the last message, with a SQLSTATE and a text."""
    for i, (t, b) in enumerate(msgs):
        if t == "E" and fields(b).get("S") == "FATAL":
            if i != len(msgs) - 1:
                return "messages after a FATAL: %s" % [x for x, _ in msgs[i:]]
            f = fields(b)
            if not f.get("C") or not f.get("M"):
                return "FATAL without SQLSTATE or message: %r" % f
    if rest:
        return "the gateway closed in the middle of a message (%d bytes left: %r; before: %s)" % (
            len(rest), rest[:200], [t for t, _ in msgs][-10:])
    return None


def check_fatal(codes=(), contains=None, prefix=True):
    def check(msgs, rest, elapsed):
        e = check_any(msgs, rest, elapsed)
        if e:
            return e
        f = fatal_of(msgs)
        if not f:
            return "expected FATAL %s, got %s" % ("/".join(codes) or "", [t for t, _ in msgs] or "a bare close")
        if codes and f.get("C") not in codes:
            return "expected SQLSTATE %s, got %s: %s" % ("/".join(codes), f.get("C"), f.get("M"))
        if contains and contains not in f.get("M", ""):
            return "FATAL message %r lacks %r" % (f.get("M"), contains)
        if prefix and not f.get("M", "").startswith("pgmoat: "):
            return "FATAL message does not start with 'pgmoat: ': %r" % f.get("M")
        return None
    return check


def check_fatal_or_close(codes):
    def check(msgs, rest, elapsed):
        e = check_any(msgs, rest, elapsed)
        if e:
            return e
        f = fatal_of(msgs)
        if f and f.get("C") not in codes:
            return "unexpected SQLSTATE %s: %s" % (f.get("C"), f.get("M"))
        return None
    return check


def check_silent(msgs, rest, elapsed):
    if msgs or rest:
        return "expected a silent close, got %s" % [t for t, _ in msgs]
    return None


PRE_CODES = ("08P01", "28000", "28P01", "3D000", "0A000", "42704")


# ---------------------------------------------------------------- before login

def good_startup(rng, user=None, db="main"):
    params = [("user", user or S["ident"]), ("database", db)]
    if rng.random() < 0.5:
        params.append(("application_name", "fuzz-%d" % rng.randrange(1000)))
    if rng.random() < 0.2:
        params.append(("client_encoding", rng.choice(["UTF8", "LATIN1", "SQL_ASCII"])))
    rng.shuffle(params)
    return startup(params)


def pre_bad_length(rng):
    n = odd_length(rng)
    tail = rand_bytes(rng, rng.randint(0, 64))
    if rng.random() < 0.5:
        tail = u32(PROTO) + tail
    return "bad-length", u32(n) + tail, 1, check_fatal(("08P01",), "invalid length of startup packet"), "watch"


def pre_truncated(rng):
    full = good_startup(rng) if rng.random() < 0.7 else cancel(rng.getrandbits(32), rng.getrandbits(32))
    cut = full[:rng.randrange(1, len(full))]
    mode = rng.choice(["close", "shut", "stall", "stall"])
    check = check_silent if mode != "close" else None
    return "truncated-startup-" + mode, cut, 1, check, mode


def pre_garbage(rng):
    data = rand_bytes(rng, rng.randint(1, 400))
    if rng.random() < 0.3:   # a plausible length so that the packet is parsed
        n = rng.randint(8, 400)
        data = u32(n) + rand_bytes(rng, n - 4)
    return "garbage", data, 1, check_fatal_or_close(PRE_CODES), rng.choice(["watch", "shut"])


def pre_mutated_startup(rng):
    pkt = good_startup(rng)
    m = mutate(rng, pkt)
    if rng.random() < 0.6:
        m = fix_untyped(m)
    pw = password(S["token"]) if rng.random() < 0.6 else mutate(rng, password(S["token"]))
    data = m + (pw if rng.random() < 0.8 else b"")
    return "mutated-startup", data, 2 if len(data) > len(m) else 1, check_any, rng.choice(["watch", "watch", "shut"])


def pre_params(rng):
    v = rng.randrange(9)
    tok = password(S["token"])
    base = [("user", S["ident"]), ("database", "main")]
    if v == 0:     # thousands of parameters
        n = rng.randint(1000, 2400)
        params = base + [("p%d" % i, "") for i in range(n)]
        pkt = startup(params)
        if len(pkt) > MAX_STARTUP:
            return "params-thousands", pkt, 1, check_fatal(("08P01",), "invalid length of startup packet"), "watch"
        return "params-thousands", pkt + tok, 2, check_fatal(("08P01",), "too many startup parameters"), "watch"
    if v == 1:     # no final terminator
        pkt = startup(base)
        pkt = fix_untyped(pkt[:-1])
        return "params-no-terminator", pkt + tok, 2, check_fatal(("08P01",), "terminator"), "watch"
    if v == 2:     # a name without a value
        body = u32(PROTO) + cstr("user") + cstr(S["ident"]) + cstr("database") + b"\0"
        return "params-no-value", u32(len(body) + 4) + body, 1, check_fatal(("08P01",)), "watch"
    if v == 3:     # an unterminated value
        body = u32(PROTO) + cstr("user") + S["ident"].encode()
        return "params-unterminated", u32(len(body) + 4) + body + tok, 2, check_fatal(("08P01",)), "watch"
    if v == 4:     # bytes after the terminator
        pkt = startup(base) + rand_bytes(rng, rng.randint(1, 20))
        return "params-trailing", fix_untyped(pkt), 1, check_fatal(("08P01",)), "watch"
    if v == 5:     # 64 custom parameters: accepted by the gateway, refused upstream on first use
        params = base + [("p%d" % i, "v") for i in range(62)]
        return "params-64-unknown", startup(params) + tok, 2, check_any, "watch"
    if v == 6:     # odd parameter names and values
        junk = lambda: mutate(rng, b"application_name", 2).replace(b"\0", b"")  # noqa: E731
        params = base + [(junk() or b"x", rand_bytes(rng, rng.randint(0, 40)).replace(b"\0", b"")) for _ in range(3)]
        return "params-odd", startup(params) + tok, 2, check_any, "watch"
    if v == 7:     # fuzzed "options"
        words = ["-c", "-cfoo=bar", "--work-mem=64kB", "-c search_path=public", "\\", "\\ ", "-x", "--",
                 "=", "-c=", "--a.b=c", "x" * rng.randint(1, 2000), "-c" + "y" * 1100 + "=1",
                 "--statement_timeout=5s", "-c\tapplication_name=a\\ b"]
        opts = " ".join(rng.choice(words) for _ in range(rng.randint(1, 6)))
        if rng.random() < 0.3:
            opts = mutate(rng, opts.encode()).replace(b"\0", b"").decode("latin-1")
        pkt = startup(base + [("options", opts)])
        return "params-options", pkt + tok, 2, check_any, "watch"
    # replication, or a wrong protocol version
    if rng.random() < 0.5:
        return "params-replication", startup(base + [("replication", "database")]) + tok, 2, \
            check_fatal(("0A000",)), "watch"
    proto = rng.choice([0, 0x00020000, 0x00040000, 0x00030001 + rng.randrange(5), rng.getrandbits(32)])
    if proto in (SSL_REQ, GSS_REQ, CANCEL_REQ) or proto >> 16 == 3:
        return "params-proto-3.x", startup(base, proto) + tok, 2, check_any, "watch"
    return "params-bad-proto", startup(base, proto), 1, check_fatal(("08P01",), "protocol"), "watch"


def pre_encryption_inline(rng):
    v = rng.randrange(5)
    if v == 0:     # plaintext injected after SSLRequest, before the answer
        return "ssl-plus-plaintext", ssl_request() + rng.choice([b"\0", good_startup(rng), rand_bytes(rng, 30)]), \
            2, check_fatal(("08P01",), "unexpected data after an encryption request"), "watch"
    if v == 1:
        return "gss-plus-plaintext", gss_request() + good_startup(rng), 2, \
            check_fatal(("08P01",), "unexpected data after an encryption request"), "watch"
    if v == 2:     # request codes with wrong lengths
        code = rng.choice([SSL_REQ, GSS_REQ, CANCEL_REQ])
        n = rng.choice([12, 9, 20, 24, 15, 17])
        return "request-bad-length", u32(n) + u32(code) + rand_bytes(rng, n - 8), 1, \
            check_fatal(("08P01",), "invalid length"), "watch"
    if v == 3:     # cancel with random keys: never an answer, just a close
        data = cancel(rng.getrandbits(32), rng.getrandbits(32))
        extra = rand_bytes(rng, rng.randint(1, 20)) if rng.random() < 0.3 else b""
        return "cancel-random", data + extra, 1, check_silent, "watch"
    if S.get("mon_pid") and rng.random() < 0.7:   # the monitor's real (gateway-minted) pid, a wrong key
        return "cancel-monitor-pid", cancel(S["mon_pid"], rng.getrandbits(32)), 1, check_silent, "watch"
    return "cancel-high-bits", cancel(0x80000000 | rng.getrandbits(31), 0xffffffff), 1, check_silent, "watch"


def pre_password(rng):
    st = good_startup(rng)
    v = rng.randrange(11)
    if v == 0:     # wrong type
        t = rng.choice([b"Q", b"X", b"\0", b"P", b"S", bytes([rng.randrange(256)])])
        if t == b"p":
            t = b"Q"
        return "password-wrong-type", st + t + u32(10) + b"secret\0\0\0", 2, \
            check_fatal(("08P01",), "expected a password message"), "watch"
    if v == 1:     # huge, or negative
        n = rng.choice([MAX_PASSWORD + 1, rng.randint(MAX_PASSWORD + 1, 0xffffffff), 0x80000000, 0xffffffff])
        return "password-huge", st + b"p" + u32(n) + b"x" * rng.randint(0, 100), 2, \
            check_fatal(("08P01",), "expected a password message"), "watch"
    if v == 2:     # length 0..3
        return "password-short-length", st + b"p" + u32(rng.randint(0, 3)) + b"xx", 2, \
            check_fatal(("08P01",)), "watch"
    if v == 3:     # no NUL, a NUL inside, or empty
        body = rng.choice([S["token"].encode(), b"ab\0cd\0", b"", b"\0\0", S["token"].encode() + b"\0x\0",
                           b"SCRAM-SHA-256\0" + u32(20) + b"n,,n=,r=abcdefghijkl"])
        return "password-malformed", st + msg(ord("p"), body), 2, check_fatal(("08P01",), "malformed"), "watch"
    if v == 4:     # wrong token (counts against a per-address budget; see src_addr)
        tok = rng.choice(["", "x", "pgm_" + rand_bytes(rng, 20).hex(), S["token"][:-1] + ("A" if S["token"][-1] != "A" else "B"),
                          S["token"] + "x", "a" * 15000])
        return "password-wrong-token", st + password(tok), 2, check_fatal(("28P01", "28000", "08P01")), "watch"
    if v == 5:     # right token, another user
        st = good_startup(rng, user=rng.choice(["nobody", "postgres", "x" * 300, S["ident"] + "x"]))
        return "password-user-mismatch", st + password(S["token"]), 2, check_fatal(("28000", "28P01")), "watch"
    if v == 6:     # right token, unknown connection
        st = good_startup(rng, db=rng.choice(["nope", "app", "x" * 200]))
        return "password-unknown-db", st + password(S["token"]), 2, check_fatal(("3D000",)), "watch"
    if v == 7:     # truncated password, then close or stall
        pw = password(S["token"])
        mode = rng.choice(["close", "stall"])
        return "password-truncated-" + mode, st + pw[:rng.randrange(1, len(pw))], 2, \
            check_fatal_or_close(()) if mode == "stall" else None, mode
    if v == 8:     # mutated password message
        return "password-mutated", st + mutate(rng, password(S["token"])), 2, check_any, "watch"
    if v == 9:     # a password first, no startup
        return "password-first", password(S["token"]), 1, check_fatal(("08P01",)), "watch"
    # two password messages: the second reaches the session as a message of type 'p'
    return "password-twice", st + password(S["token"]) + password(S["token"]), 3, check_any, "watch"


PRE_GENERATORS = [(pre_bad_length, 10), (pre_truncated, 8), (pre_garbage, 8), (pre_mutated_startup, 24),
                  (pre_params, 8), (pre_encryption_inline, 8), (pre_password, 18)]


def run_pre(rng, gen, stats, watcher):
    kind, data, nmsgs, check, mode = gen(rng)
    src = src_addr(rng)
    opened = time.monotonic()
    s = dial(src)
    try:
        if rng.random() < 0.2 and not kind.endswith("-plus-plaintext"):   # those must arrive at once
            dribble(s, data, rng)
        else:
            s.sendall(data)
    except OSError:
        pass
    stats.count(kind, nmsgs)
    sample = data[:48].hex() + ("..(%d bytes)" % len(data) if len(data) > 48 else "")
    if mode == "close":
        s.close()
        return
    if mode == "shut":
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
    min_close = AUTH_TIMEOUT - 0.3 if mode == "stall" and check is check_silent else None
    watcher.add(s, kind, check or check_any, opened, min_close=min_close, sample=sample)


# ---- the encryption requests that need the gateway's answer first

def recv_exact(s, n, timeout=IO_TIMEOUT):
    s.settimeout(timeout)
    b = b""
    while len(b) < n:
        d = s.recv(n - len(b))
        if not d:
            break
        b += d
    return b


def run_tls(rng, stats, watcher):
    v = rng.randrange(8)
    src = src_addr(rng)
    opened = time.monotonic()
    s = dial(src)
    s.sendall(ssl_request())
    a = recv_exact(s, 1)
    if a != b"S":
        stats.fail("tls", "SSLRequest answered %r" % a)
        s.close()
        return
    if v == 0:     # a partial ClientHello, then silence: closed by the auth timeout
        ch = client_hello()
        s.sendall(ch[:rng.randrange(1, len(ch))])
        stats.count("tls-partial-clienthello-stall", 2)
        watcher.add(s, "tls-partial-clienthello-stall", None, opened, raw=True, min_close=AUTH_TIMEOUT - 0.3)
        return
    if v == 1:     # a whole ClientHello, then silence
        s.sendall(client_hello())
        stats.count("tls-clienthello-stall", 2)
        watcher.add(s, "tls-clienthello-stall", None, opened, raw=True, min_close=AUTH_TIMEOUT - 0.3)
        return
    if v == 2:     # garbage or plaintext instead of a ClientHello: never a PostgreSQL answer
        data = rng.choice([good_startup(rng) + password(S["token"]), rand_bytes(rng, rng.randint(1, 300)),
                           mutate(rng, client_hello())])
        try:
            s.sendall(data)
        except OSError:
            pass
        stats.count("tls-garbage-handshake", 2)

        def no_pg(msgs, raw, elapsed):
            if b"R\0\0\0\x08\0\0\0" in raw or raw[:1] in (b"E", b"R"):
                return "the gateway answered plaintext after 'S'"
            return None
        watcher.add(s, "tls-garbage-handshake", no_pg, opened, raw=True)
        return
    # a real handshake, then fuzz inside TLS
    try:
        ts = S["tls_ctx"].wrap_socket(s, server_hostname="localhost")
    except (ssl.SSLError, OSError) as e:
        stats.fail("tls", "handshake failed: %s" % e)
        s.close()
        return
    w = Wire(ts, rng)
    try:
        if v == 3:
            w.send(ssl_request())
            kind, check = "tls-ssl-twice", check_fatal(("08P01",), "encryption requested twice")
        elif v == 4:
            kind, check = "tls-mutated-startup", check_any
            w.send(fix_untyped(mutate(rng, good_startup(rng))) + password(S["token"]))
        elif v == 5:
            kind, check = "tls-bad-length", check_fatal(("08P01",))
            w.send(u32(odd_length(rng)) + rand_bytes(rng, 20))
        elif v == 6:
            kind, check = "tls-password-fuzz", check_any
            w.send(good_startup(rng) + mutate(rng, password(S["token"])))
        else:
            kind, check = "tls-gss-inside", check_fatal(("08P01",), "encryption requested twice")
            w.send(gss_request())
        stats.count(kind, 3)
        msgs = w.read(lambda m: fatal_of(m) is not None or auth_ok(m), AUTH_TIMEOUT + SLACK, "close")
        if auth_ok(msgs) and fatal_of(msgs) is None:
            if not any(t == "Z" for t, _ in msgs):
                msgs += w.read(until_z(), IO_TIMEOUT, "ReadyForQuery")
            w.send(TERMINATE)
        msgs += w.read_to_eof(AUTH_TIMEOUT + SLACK)
        err = check(msgs, w.buf, time.monotonic() - opened)
        if err:
            stats.fail(kind, err)
    except Hang as e:
        stats.fail("tls", str(e))
    finally:
        w.close()


def run_gss(rng, stats, watcher):
    """GSSENCRequest is answered 'N'; then anything that may follow it."""
    src = src_addr(rng)
    opened = time.monotonic()
    s = dial(src)
    n = rng.randint(1, 3)
    for _ in range(n):
        s.sendall(gss_request())
        a = recv_exact(s, 1)
        if a != b"N":
            stats.fail("gss", "GSSENCRequest answered %r" % a)
            s.close()
            return
    follow = rng.choice([good_startup(rng) + password(S["token"]), mutate(rng, good_startup(rng)),
                         ssl_request() + b"x", u32(odd_length(rng)) + b"abcd"])
    try:
        s.sendall(follow)
    except OSError:
        pass
    stats.count("gss-then-fuzz", n + 1)
    watcher.add(s, "gss-then-fuzz", check_any, opened, sample=follow[:48].hex())


# ---------------------------------------------------------------- after login

def login(rng, tls=None):
    src = src_addr(rng)
    s = dial(src)
    if tls is None:
        tls = rng.random() < 0.3
    if tls:
        s.sendall(ssl_request())
        if recv_exact(s, 1) != b"S":
            s.close()
            raise AssertionError("SSLRequest refused")
        s = S["tls_ctx"].wrap_socket(s, server_hostname="localhost")
    w = Wire(s, rng)
    w.send(startup([("user", S["ident"]), ("database", "main"), ("application_name", "badinput")]) +
           password(S["token"]))
    msgs = w.read(until_z(), IO_TIMEOUT, "login")
    if not auth_ok(msgs) or not any(t == "Z" for t, _ in msgs):
        w.close()
        raise AssertionError("login failed: %s %s" % ([t for t, _ in msgs], fatal_of(msgs)))
    return w


def expect_select(w, value="4242"):
    """After Sync: ROLLBACK and SELECT value answer as usual (the session is usable)."""
    w.send(query("ROLLBACK") + query("SELECT %s" % value))
    msgs = w.read(lambda m: any(t == "D" and value.encode() in b for t, b in m) and m[-1][0] == "Z"
                  or fatal_of(m) is not None, IO_TIMEOUT, "the result of SELECT %s" % value)
    f = fatal_of(msgs)
    if f:
        raise AssertionError("session ended with FATAL %s %s" % (f.get("C"), f.get("M")))
    if w.eof:
        raise AssertionError("session closed before SELECT %s" % value)
    return 2


def expect_error_then_z(w, code, what):
    msgs = w.read(until_z(), IO_TIMEOUT, what)
    errs = [fields(b) for t, b in msgs if t == "E"]
    if not errs or errs[0].get("C") != code or errs[0].get("S") != "ERROR":
        raise AssertionError("%s: expected ERROR %s, got %s" % (what, code, errs or [t for t, _ in msgs]))
    if msgs[-1][0] != "Z":
        raise AssertionError("%s: no ReadyForQuery after the error" % what)


def post_out_of_order(rng, w):
    v = rng.randrange(8)
    if v == 0:
        w.send(bind("", "nosuch_%d" % rng.randrange(10 ** 6)) + execute("") + SYNC)
        expect_error_then_z(w, "26000", "Bind before Parse")
        n = 3
    elif v == 1:
        w.send(execute("portal_%d" % rng.randrange(1000)) + SYNC)
        expect_error_then_z(w, "34000", "Execute of an unknown portal")
        n = 2
    elif v == 2:
        w.send(describe(b"S", "nosuch") + SYNC)
        expect_error_then_z(w, "26000", "Describe of an unknown statement")
        n = 2
    elif v == 3:
        w.send(parse("", "SELECT $1::int", [23]) + execute("") + SYNC)
        expect_error_then_z(w, "34000", "Execute before Bind")
        n = 3
    elif v == 4:
        w.send(parse("", "SELECT $1::int", [23]) + bind("", "", [b"1", b"2"]) + execute("") + SYNC)
        expect_error_then_z(w, "08P01", "Bind with the wrong parameter count")
        n = 4
    elif v == 5:   # CopyData / CopyDone / CopyFail outside COPY: ignored by the server
        k = rng.randint(1, 30)
        data = b"".join(rng.choice([msg(ord("d"), rand_bytes(rng, rng.randint(0, 100))), msg(ord("c")),
                                    msg(ord("f"), cstr("no copy"))]) for _ in range(k))
        w.send(data)
        n = k
    elif v == 6:   # Sync storm: exactly one ReadyForQuery each, in order
        k = rng.randint(20, 250)
        flushes = rng.random() < 0.5
        w.send((SYNC + (FLUSH if flushes else b"")) * k)
        msgs = w.read(until_z(k), IO_TIMEOUT, "%d ReadyForQuery" % k)
        # Only ReadyForQuery, apart from ParameterStatus (the upstream reports the session's settings
        # when it is attached at the first message).
        other = [t for t, _ in msgs if t not in "ZS"]
        z = [t for t, _ in msgs if t == "Z"]
        if len(z) != k or other:
            raise AssertionError("Sync storm of %d: got %d ReadyForQuery and %s" % (k, len(z), other))
        n = k * (2 if flushes else 1)
    else:
        w.send(close_msg(rng.choice([b"S", b"P"]), "nosuch") + describe(b"P", "nosuch") + SYNC)
        expect_error_then_z(w, "34000", "Describe of an unknown portal")
        n = 3
    return n + expect_select(w)


HARMLESS = ["SELECT 1", "SELECT $1::int", "SELECT $1::text", "SELECT 1/0", "SELEC 1", "BEGIN", "COMMIT",
            "ROLLBACK", "SELECT pg_sleep(0)", "SELECT repeat('x', 70000)", "SELECT * FROM fuzz LIMIT 3", "",
            "SHOW server_version", "SELECT generate_series(1, 50)", "VALUES (1, 'a'), (2, NULL)"]


def random_message(rng):
    names = ["", "s1", "s2", "p1"]
    t = rng.choice("PPBBDEECHSQdcf")
    if t == "P":
        m = parse(rng.choice(names), rng.choice(HARMLESS), rng.choice([(), (23,), (25,), (0,), (23, 25)]))
    elif t == "B":
        params = [rng.choice([b"1", b"abc", None, rand_bytes(rng, 4), b"\0\0\0\x01"]) for _ in range(rng.randint(0, 2))]
        m = bind(rng.choice(names), rng.choice(names), params, rng.choice([(), (0,), (1,), (0, 1)]),
                 rng.choice([(), (0,), (1,)]))
    elif t == "D":
        m = describe(rng.choice([b"S", b"P"]), rng.choice(names))
    elif t == "E":
        m = execute(rng.choice(names), rng.choice([0, 1, 5]))
    elif t == "C":
        m = close_msg(rng.choice([b"S", b"P"]), rng.choice(names))
    elif t == "Q":
        m = query(rng.choice([q for q in HARMLESS if "$1" not in q]))
    elif t == "d":
        m = msg(ord("d"), rand_bytes(rng, rng.randint(0, 50)))
    elif t == "c":
        m = msg(ord("c"))
    elif t == "f":
        m = msg(ord("f"), cstr("x"))
    else:
        m = msg(ord(t))
    if rng.random() < 0.25:   # mutate the body, keep the frame (and the type) valid
        m = fix_typed(m[:5] + mutate(rng, m[5:]))
    return m


def post_random_sequence(rng, w):
    k = rng.randint(3, 40)
    data = b"".join(random_message(rng) for _ in range(k))
    w.send(data + SYNC)
    return k + 1 + expect_select(w)


def post_copy(rng, w):
    v = rng.randrange(3)
    if v < 2:   # COPY FROM STDIN fed garbage, then ended in some way
        w.send(query("COPY fuzz FROM STDIN"))
        msgs = w.read(lambda m: any(t in "GEZ" for t, _ in m), IO_TIMEOUT, "CopyInResponse")
        if not any(t == "G" for t, _ in msgs):
            raise AssertionError("no CopyInResponse: %s" % [t for t, _ in msgs])
        k = rng.randint(1, 40)
        rows = []
        for _ in range(k):
            row = b"%d\t%s\n" % (rng.randrange(10 ** 6), rand_bytes(rng, 8).hex().encode())
            rows.append(msg(ord("d"), mutate(rng, row) if rng.random() < 0.2 else row))
        end = rng.choice([msg(ord("c")), msg(ord("f"), cstr("fuzz")), query("SELECT 1"),
                          SYNC + FLUSH + msg(ord("c")), msg(ord("d"), b"\\.\n") + msg(ord("c"))])
        w.send(b"".join(rows) + end)
        msgs = w.read(until_z(), IO_TIMEOUT, "the end of COPY")
        f = fatal_of(msgs)
        if f:
            # A Query in the middle of COPY FROM STDIN: PostgreSQL itself ends the connection
            # ("protocol synchronization was lost"); the client gets that FATAL, then a close.
            if end[:1] != b"Q" or f.get("C") != "08P01":
                raise AssertionError("COPY ended with FATAL %s %s" % (f.get("C"), f.get("M")))
            w.read_to_eof(IO_TIMEOUT, "close after the upstream's FATAL")
            return k + 2
        return k + 2 + expect_select(w)
    # COPY TO STDOUT, then the client goes away in the middle
    w.send(query("COPY (SELECT g, repeat('x', 200) FROM generate_series(1, 100000) g) TO STDOUT"))
    rows = rng.randint(1, 2000)
    w.read(lambda m: sum(1 for t, _ in m if t == "d") > rows or fatal_of(m) is not None,
           IO_TIMEOUT, "CopyData")
    w.close()
    return 1


def post_violation(rng, w, specific=None):
    """Messages the gateway itself must refuse: FATAL 08P01 and a close."""
    npre = rng.randint(1, 3) if rng.random() < 0.3 else 0
    pre = b"".join(random_message(rng) for _ in range(npre))
    v = specific if specific is not None else rng.randrange(4)
    contains = None
    if v == 0:     # unknown type
        t = rng.randrange(256)
        while t in FRONTEND_TYPES and t != ord("p"):
            t = rng.randrange(256)
        bad = msg(t, rand_bytes(rng, rng.randint(0, 30)))
        contains = "invalid frontend message type"
    elif v == 1:   # length 0..3
        bad = bytes([rng.choice(FRONTEND_TYPES)]) + u32(rng.randint(0, 3)) + rand_bytes(rng, 8)
        contains = "invalid message length"
    elif v == 2:   # over the limit, negative
        n = rng.choice([MAX_MSG + 1, 0x7fffffff, 0x80000000, 0xffffffff, rng.randint(MAX_MSG + 1, 0xffffffff)])
        bad = bytes([rng.choice(FRONTEND_TYPES)]) + u32(n) + rand_bytes(rng, rng.randint(0, 100))
        contains = "the limit is %d bytes" % MAX_MSG
    else:          # a StartupMessage or SSLRequest where a typed message belongs, with enough bytes to frame
        bad = rng.choice([ssl_request(), good_startup(rng), cancel(1, 2)]) + b"\xff" * 5
        bad = b"\x01" + bad
        contains = "invalid frontend message type"
    w.send(pre + bad)
    msgs = w.read_to_eof(IO_TIMEOUT, "FATAL and close")
    err = check_fatal(("08P01",), contains)(msgs, w.buf, 0)
    if err:
        raise AssertionError(err)
    return npre + 1


def post_truncated(rng, w):
    """A message cut short, then a close (or a half close: the gateway must close too)."""
    m = random_message(rng) if rng.random() < 0.7 else query("SELECT " + "1" * rng.randint(10, 5000))
    cut = m[:rng.randrange(1, len(m))]
    w.send(cut)
    if rng.random() < 0.5:
        w.close()
        return 1
    w.half_close()
    msgs = w.read_to_eof(IO_TIMEOUT, "close after a half close")
    err = None if w.raw else check_any(msgs, w.buf, 0)
    if err:
        raise AssertionError(err)
    return 1


def post_random_bytes(rng, w):
    data = rand_bytes(rng, rng.randint(1, 2000))
    w.send(data)
    w.half_close()
    msgs = w.read_to_eof(IO_TIMEOUT, "close after random bytes")
    err = None if w.raw else check_any(msgs, w.buf, 0)
    if err:
        raise AssertionError(err)
    return 1


def post_terminate_midway(rng, w):
    w.send(query("SELECT 1") + TERMINATE + rand_bytes(rng, rng.randint(0, 100)))
    w.read_to_eof(IO_TIMEOUT, "close after Terminate")
    return 2


def post_large_legal(rng, w):
    """Legal messages larger than the 1 MiB read buffer: answered, not stalled."""
    n = rng.randint(1_100_000, 3_000_000)
    v = rng.randrange(3)
    if v == 0:
        w.send(query("SELECT length('%s')" % ("x" * n)))
        msgs = w.read(until_z(), IO_TIMEOUT, "the answer to a %d-byte Query" % n)
        if not any(t == "D" and str(n).encode() in b for t, b in msgs):
            raise AssertionError("large Query: %s" % [t for t, _ in msgs])
        return 1 + expect_select(w)
    if v == 1:
        w.send(parse("", "SELECT length($1::text)") + bind("", "", [b"y" * n]) + execute("") + SYNC)
        msgs = w.read(until_z(), IO_TIMEOUT, "the answer to a %d-byte Bind" % n)
        if not any(t == "D" and str(n).encode() in b for t, b in msgs):
            raise AssertionError("large Bind: %s" % [t for t, _ in msgs])
        return 4 + expect_select(w)
    # an error message that big comes back the other way
    w.send(query("SELECT '%s'::int" % ("z" * n)))
    expect_error_then_z(w, "22P02", "a %d-byte invalid integer" % n)
    return 1 + expect_select(w)


POST_SCENARIOS = [(post_out_of_order, 14), (post_random_sequence, 14), (post_copy, 5), (post_violation, 8),
                  (post_truncated, 5), (post_random_bytes, 5), (post_terminate_midway, 2), (post_large_legal, 1)]


# Scenarios after which the connection is gone.
TERMINAL = (post_violation, post_truncated, post_random_bytes, post_terminate_midway)


def run_post(rng, fn, stats):
    kind = fn.__name__.replace("post_", "after-login-").replace("_", "-")
    try:
        w = login(rng)
    except Exception as e:
        stats.fail(kind, "login: %s" % e)
        return
    n = 2
    try:
        for _ in range(1 if fn in TERMINAL else rng.randint(1, 4)):
            n += fn(rng, w)
            if w.eof or w.sock.fileno() < 0:
                break
        if not w.eof and w.sock.fileno() >= 0 and rng.random() < 0.5:
            w.send(TERMINATE)
            n += 1
            w.read_to_eof(IO_TIMEOUT, "close after Terminate")
    except (AssertionError, OSError) as e:
        stats.fail(kind, "%s: %s" % (type(e).__name__, e))
    finally:
        w.close()
        stats.count(kind, n)


# ---------------------------------------------------------------- load and monitor

def fuzz_worker(i, seed, stats, watcher, stop):
    rng = random.Random(seed * 1000003 + i)
    pre = [g for g, wgt in PRE_GENERATORS for _ in range(wgt)]
    post = [g for g, wgt in POST_SCENARIOS for _ in range(wgt)]
    while not stop.is_set():
        # Keep the watcher's backlog bounded (stalled sockets wait for the auth timeout).
        if len(watcher.open) + watcher.q.qsize() > 600:
            time.sleep(0.05)
            continue
        r = rng.random()
        try:
            if r < 0.60:
                run_pre(rng, rng.choice(pre), stats, watcher)
            elif r < 0.66:
                run_tls(rng, stats, watcher)
            elif r < 0.69:
                run_gss(rng, stats, watcher)
            else:
                run_post(rng, rng.choice(post), stats)
        except Exception:
            stats.fail("worker-%d" % i, traceback.format_exc(limit=4))


class Monitor:
    """SELECT 1 through the gateway, on a persistent connection and on fresh ones, all the while."""

    def __init__(self, dsn):
        self.dsn = dsn
        self.stop = threading.Event()
        self.errors = []
        self.persistent = 0
        self.fresh = 0
        self.last_ok = time.monotonic()
        self.max_gap = 0.0
        self.threads = [threading.Thread(target=self.run_persistent, daemon=True),
                        threading.Thread(target=self.run_fresh, daemon=True)]

    def ok(self):
        now = time.monotonic()
        self.max_gap = max(self.max_gap, now - self.last_ok)
        self.last_ok = now

    def run_persistent(self):
        try:
            with psycopg.connect(self.dsn, autocommit=True, connect_timeout=10) as c:
                S["mon_pid"] = c.info.backend_pid   # fuzzed CancelRequests aim at it with wrong keys
                while not self.stop.is_set():
                    v = c.execute("SELECT 1").fetchone()[0]
                    assert v == 1, v
                    self.persistent += 1
                    self.ok()
                    time.sleep(0.01)
        except Exception as e:
            self.errors.append("persistent connection: %r" % e)

    def run_fresh(self):
        while not self.stop.is_set():
            try:
                with psycopg.connect(self.dsn, connect_timeout=10) as c:
                    v = c.execute("SELECT 1").fetchone()[0]
                    assert v == 1, v
                self.fresh += 1
                self.ok()
            except Exception as e:
                self.errors.append("new connection: %r" % e)
            time.sleep(0.05)

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(IO_TIMEOUT + 10)
            if t.is_alive():
                self.errors.append("monitor thread hung")


# ---------------------------------------------------------------- specific expectations

def wire_once(data, src="127.0.0.2", timeout=AUTH_TIMEOUT + SLACK):
    s = dial(src)
    w = Wire(s)
    try:
        w.send(data)
        msgs = w.read_to_eof(timeout)
        return msgs, w.buf
    finally:
        w.close()


BIG_ROW = 20_000_000


def start_big_row(rng, tls):
    """A session in the middle of receiving a 20 MB DataRow, which it does not read on: the
    gateway holds the rest back at its buffer limit."""
    w = login(rng, tls=tls)
    w.send(query("SELECT repeat('x', %d)" % BIG_ROW))
    w.read(lambda m: len(w.buf) > 1000 or fatal_of(m) is not None, IO_TIMEOUT, "the start of a large row")
    time.sleep(0.3)
    return w


def fatal_mid_stream(rng, tls):
    """A message the gateway refuses while it is streaming a large DataRow to the client."""
    w = start_big_row(rng, tls)
    w.send(msg(1, b"bad"))
    time.sleep(0.3)
    return end_of_stream(w, "08P01")


def end_of_stream(w, code):
    """Read up to the close: the stream must stay well-formed (a FATAL with code after whole
    messages, or a close in the middle of the row), never an ErrorResponse inside the row."""
    try:
        got = [w.buf]      # the rest, unparsed, up to the close
        w.sock.settimeout(IO_TIMEOUT)
        while True:
            try:
                d = w.sock.recv(1 << 20)
            except socket.timeout:
                raise Hang("the gateway neither finished the row nor closed")
            except (ConnectionError, ssl.SSLError, OSError):
                d = b""
            if not d:
                break
            got.append(d)
    finally:
        w.close()
    data = b"".join(got)
    n = BIG_ROW
    i = 0
    msgs = []
    while i + 5 <= len(data):
        t, ln = chr(data[i]), struct.unpack_from("!I", data, i + 1)[0]
        if i + 1 + ln > len(data):
            assert t == "D", "stream cut inside a %r message" % t
            body = data[i + 5:]
            assert body[:2] == b"\0\1" and len(body) >= 6, body[:10]
            bad = body[6:].strip(b"x")
            assert not bad, "bytes inside a streamed DataRow that are not its value: %r" % bad[:120]
            return "row cut after %d of %d bytes" % (len(body) - 6, n)
        msgs.append((t, data[i + 5:i + 1 + ln]))
        i += 1 + ln
    assert i == len(data), "trailing bytes %r" % data[i:i + 40]
    f = fatal_of(msgs)
    assert f and f.get("C") == code and msgs[-1][0] == "E", [t for t, _ in msgs]
    return "FATAL %s after %s" % (code, "".join(t for t, _ in msgs[:-1]) or "nothing")


def startup_of_size(n):
    fixed = len(startup([("user", S["ident"]), ("application_name", "")]))
    pkt = startup([("user", S["ident"]), ("application_name", "a" * (n - fixed))])
    assert len(pkt) == n, len(pkt)
    return pkt


def specific_checks(stats, watcher):
    rng = random.Random(1)
    # A startup packet of 10001 bytes (one over limits.max_startup_size): FATAL 08P01.
    pkt = startup_of_size(MAX_STARTUP + 1)
    msgs, rest = wire_once(pkt)
    stats.count("specific", 1)
    err = check_fatal(("08P01",), "invalid length of startup packet (10001 bytes)")(msgs, rest, 0)
    assert not err, "10001-byte startup packet: " + err
    # One of exactly 10000 bytes is accepted (the password is asked for).
    pkt = startup_of_size(MAX_STARTUP)
    msgs, rest = wire_once(pkt + password("wrong"))
    stats.count("specific", 2)
    assert auth_code(msgs) == 3, "10000-byte startup packet: %s" % [t for t, _ in msgs]
    # A plaintext byte right after SSLRequest: refused, no 'S'.
    for extra in (b"\0", b"x", good_startup(rng)):
        s = dial("127.0.0.3")
        s.sendall(ssl_request() + extra)
        first = recv_exact(s, 1)
        assert first != b"S", "SSLRequest followed by plaintext was answered 'S'"
        w = Wire(s)
        w.buf = first
        msgs = w.read_to_eof(AUTH_TIMEOUT + SLACK)
        w.close()
        stats.count("specific", 2)
        err = check_fatal(("08P01",), "unexpected data after an encryption request")(msgs, w.buf, 0)
        assert not err, "SSLRequest + plaintext: " + err
    # A huge length after login: FATAL 08P01 naming the limit.
    for n in (0x7fffffff, MAX_MSG + 1, 0xffffffff):
        w = login(rng, tls=n == MAX_MSG + 1)
        w.send(b"Q" + u32(n) + b"SELECT 1")
        msgs = w.read_to_eof(IO_TIMEOUT)
        w.close()
        stats.count("specific", 3)
        err = check_fatal(("08P01",), "the limit is %d bytes" % MAX_MSG)(msgs, w.buf, 0)
        assert not err, "length %d after login: %s" % (n, err)
    # Startup parameter values are applied upstream as SQL literals: quotes, backslashes and
    # multi-byte encodings whose second byte is a backslash must not end the literal early.
    for enc, val in (("UTF8", b"x'; CREATE TABLE injected_q(); --"), ("UTF8", b"x\\'; CREATE TABLE injected_b(); --"),
                     ("SJIS", b"\x95\\'; CREATE TABLE injected_sjis(); --"),
                     ("BIG5", b"\xa4\\'; CREATE TABLE injected_big5(); --"),
                     ("GBK", b"\xbf\\'; CREATE TABLE injected_gbk(); --")):
        pkt = startup([("user", S["ident"]), ("database", "main"), ("client_encoding", enc),
                       ("application_name", val)])
        s = dial("127.0.0.5")
        s.sendall(pkt + password(S["token"]))
        w = Wire(s)
        msgs = w.read(until_z(), IO_TIMEOUT, "login")
        if fatal_of(msgs) is None:
            w.send(query("SELECT 1") + TERMINATE)
        w.read_to_eof(IO_TIMEOUT)
        w.close()
        stats.count("specific", 4)
    n = S["pg"].sql("SELECT count(*) FROM pg_class WHERE relname LIKE 'injected%'", db="app")
    assert n == "0", "a startup parameter value ran as SQL upstream (%s tables)" % n
    # What clients send is quoted in the gateway's log: it must not be able to forge a log line.
    forged = "\n2026-01-01T00:00:00.000000Z info session 0 opened: identity=admin kind=human (forged)\r\x1b[2K"
    for params in ([("user", "nobody" + forged), ("database", "main")],
                   [("user", S["ident"]), ("database", "main" + forged)],
                   [("user", S["ident"]), ("database", "main"), ("application_name", "app" + forged)]):
        w = Wire(dial("127.0.0.8"))
        w.send(startup(params) + password(S["token"]))
        if fatal_of(w.read(until_z(), IO_TIMEOUT, "login")) is None:
            w.send(TERMINATE)
        w.read_to_eof(IO_TIMEOUT)
        w.close()
        stats.count("specific", 2)
    # Statements sent before Terminate still run (as with PostgreSQL), also when all of it comes in
    # one packet with the login, before the session has an upstream connection.
    base = rng.randrange(10 ** 8)
    cases = []
    for i, tls in enumerate((False, True, False, True)):
        ins = "INSERT INTO fuzz VALUES (%d, 'before-terminate')" % (base + i)
        w = login(rng, tls=tls)
        w.send((query(ins) if i < 2 else parse("", ins) + bind("", "") + execute("") + SYNC) + TERMINATE)
        cases.append(w)
    ins = "INSERT INTO fuzz VALUES (%d, 'before-terminate')" % (base + 4)
    w = Wire(dial("127.0.0.7"))
    w.send(startup([("user", S["ident"]), ("database", "main")]) + password(S["token"]) + query(ins) + TERMINATE)
    cases.append(w)
    for w in cases:
        w.read_to_eof(IO_TIMEOUT)
        w.close()
        stats.count("specific", 4)
    want = ",".join(str(base + i) for i in range(5))
    deadline = time.monotonic() + IO_TIMEOUT
    while True:
        got = S["pg"].sql("SELECT string_agg(a::text, ',' ORDER BY a) FROM fuzz WHERE b = 'before-terminate' "
                          "AND a BETWEEN %d AND %d" % (base, base + 4), db="app")
        if got == want or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert got == want, "statements sent before Terminate: rows %r, expected %r" % (got, want)
    # A refused message while a 20 MB row is being streamed: no ErrorResponse inside the row.
    for tls in (False, True):
        how = fatal_mid_stream(rng, tls)
        stats.count("specific", 4)
        print("     refused message during a streamed row (%s): %s" % ("TLS" if tls else "plaintext", how),
              flush=True)
    # Stalled TLS handshakes (and a stalled plaintext startup) are closed by the auth timeout.
    t0 = time.monotonic()
    stalls = []
    for i in range(30):
        s = dial("127.0.0.4")
        opened = time.monotonic()
        s.sendall(ssl_request())
        assert recv_exact(s, 1) == b"S"
        ch = client_hello()
        s.sendall(ch[:1 + i * (len(ch) - 1) // 30] if i % 3 else ch)
        stalls.append((s, opened, "tls-stall"))
        stats.count("specific", 2)
    for i in range(10):
        s = dial("127.0.0.4")
        s.sendall(good_startup(rng)[:i + 1])
        stalls.append((s, time.monotonic(), "plain-stall"))
        stats.count("specific", 1)
    closed = []
    for s, opened, kind in stalls:
        s.settimeout(max(0.1, opened + AUTH_TIMEOUT + SLACK - time.monotonic()))
        data = b""
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    break
                data += d
        except socket.timeout:
            raise AssertionError("%s: still open %.1fs after connect (auth timeout %.0fs)" %
                                 (kind, time.monotonic() - opened, AUTH_TIMEOUT))
        except OSError:
            pass
        took = time.monotonic() - opened
        closed.append(took)
        assert took >= AUTH_TIMEOUT - 0.3, "%s closed after %.2fs, before the auth timeout" % (kind, took)
        if kind == "plain-stall":
            assert data == b"", data
        s.close()
    print("     stalled handshakes closed after %.2f..%.2fs (auth_timeout %.0fs), %d of them"
          % (min(closed), max(closed), AUTH_TIMEOUT, len(closed)), flush=True)
    return time.monotonic() - t0


# ---------------------------------------------------------------- the test

def upstream_log():
    try:
        with open(os.path.join(S["pg"].dir, "log"), errors="replace") as f:
            lines = [ln.rstrip() for ln in f if any(w in ln for w in ("FATAL", "PANIC", "terminated", "LOG"))]
    except OSError:
        return ""
    return "\n".join(lines[-30:])


def setup_module():
    certs = Certs()
    pg = Postgres().start().setup_roles()
    pg.sql("CREATE TABLE fuzz (a int, b text); GRANT ALL ON fuzz TO gw_scram", db="app")
    conns = [dict(name="main", host="127.0.0.1", port=pg.port, database="app", user="gw_scram",
                  password="env:GW_SCRAM_PW", sslmode="disable", pool=40)]
    # Policies on: every Query, Parse, Bind and FunctionCall also goes through the classifier and the
    # decision path (admin scope allows what the fuzz needs; the guardrails deny some of it).
    policies = ("policies:\n  - name: fuzz-admin\n    who: [group:fuzz]\n    connections: [main]\n"
                "    scope: admin\n    guardrails: [no_delete_without_where, no_drop, no_truncate]\n")
    gw = Gateway(pg, tls=certs, connections=conns, env={"GW_SCRAM_PW": "scram-pw"},
                 extra="limits:\n  auth_timeout: 2s\n  max_message_size: 16MB\n" + policies).start()
    ident, token = gw.agent("fuzz-agent", ["fuzz"])
    mon_ident, mon_token = gw.agent("monitor-agent", ["fuzz"])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    S.update(pg=pg, gw=gw, certs=certs, ident=ident, token=token, tls_ctx=ctx,
             mon_dsn=gw.dsn(mon_ident, mon_token, application_name="badinput-monitor"))


def test_bad_input():
    gw = S["gw"]
    seed = int(os.environ.get("PGMOAT_FUZZ_SEED") or random.SystemRandom().randrange(1 << 32))
    print("     seed %d (PGMOAT_FUZZ_SEED=%d to replay)" % (seed, seed), flush=True)
    stats = Stats()
    watcher = Watcher(stats)
    watcher.start()
    mon = Monitor(S["mon_dsn"])
    mon.start()
    t0 = time.monotonic()
    stop = threading.Event()
    workers = [threading.Thread(target=fuzz_worker, args=(i, seed, stats, watcher, stop), daemon=True)
               for i in range(WORKERS)]
    for t in workers:
        t.start()
    try:
        specific_checks(stats, watcher)
        while stats.messages < TARGET_MESSAGES and time.monotonic() - t0 < MAX_FUZZ_SECONDS:
            time.sleep(0.2)
            if time.monotonic() - mon.last_ok > IO_TIMEOUT:
                stats.fail("monitor", "no SELECT 1 succeeded for %.0fs" % (time.monotonic() - mon.last_ok))
                break
    finally:
        stop.set()
        for t in workers:
            t.join(IO_TIMEOUT * 3)
        fuzz_s = time.monotonic() - t0
        # One more query on each path after the storm, then stop the monitor.
        time.sleep(0.3)
        mon.finish()
        watcher.stopping = True
        watcher.done.wait(AUTH_TIMEOUT + SLACK + 5)
    with psycopg.connect(S["mon_dsn"], connect_timeout=10) as c:
        assert c.execute("SELECT 1").fetchone()[0] == 1
    alive = gw.proc is not None and gw.proc.poll() is None
    print("     %d messages on %d connections in %.1fs (%d watched, %d closed by the auth timeout); "
          "monitor: %d persistent + %d new-connection SELECT 1, longest gap %.2fs"
          % (stats.messages, stats.connections, fuzz_s, watcher.watched, watcher.closed_by_timeout,
             mon.persistent, mon.fresh, mon.max_gap), flush=True)
    for kind in sorted(stats.kinds):
        print("       %-36s %6d cases %7d messages" % (kind, stats.kinds[kind][0], stats.kinds[kind][1]))
    assert not any(t.is_alive() for t in workers), "a fuzz worker hung"
    assert watcher.done.is_set(), "sockets still open: %d" % len(watcher.open)
    assert not stats.failures, "%d failures (seed %d):\n%s\nupstream log:\n%s" % (
        len(stats.failures), seed, "\n".join(stats.failures[:25]), upstream_log())
    assert not mon.errors, "the gateway failed other sessions: %s" % mon.errors[:10]
    assert mon.persistent > 50 and mon.fresh > 10, (mon.persistent, mon.fresh)
    assert alive, "the gateway died:\n" + gw.read_log()[-4000:]
    assert stats.messages >= MIN_MESSAGES, stats.messages
    # Stop the gateway with sessions in flight: one in the middle of a streamed row, one in COPY
    # FROM STDIN, one idle, one half way through a TLS handshake.
    rng = random.Random(seed)
    big = start_big_row(rng, tls=True)
    copying = login(rng)
    copying.send(query("COPY fuzz FROM STDIN") + msg(ord("d"), b"1\tpartial"))
    copying.read(lambda m: any(t == "G" for t, _ in m), IO_TIMEOUT, "CopyInResponse")
    idle = login(rng, tls=True)
    handshake = dial("127.0.0.6")
    handshake.sendall(ssl_request())
    assert recv_exact(handshake, 1) == b"S"
    handshake.sendall(client_hello()[:20])
    rc = gw.stop()   # raises on any sanitizer report in the log
    assert rc == 0, "gateway exit status %s" % rc
    print("     stopped with a streamed row in flight: %s" % end_of_stream(big, "57P01"), flush=True)
    for w in (copying, idle):
        msgs = w.read_to_eof(IO_TIMEOUT)
        w.close()
        f = fatal_of(msgs)
        assert f and f.get("C") == "57P01" and not w.buf, ([t for t, _ in msgs], w.buf)
    assert recv_exact(handshake, 1) == b""
    handshake.close()
    # Every line of the gateway's log is one of its own (nothing a client sent started a line).
    line_re = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+Z (debug|info|warn|error) [^\x00-\x1f\x7f]*$")
    bad = [ln for ln in gw.read_log().split("\n")[:-1] if not line_re.match(ln)]
    assert not bad, "%d log lines not written as such by the gateway, e.g. %r" % (len(bad), bad[:3])


if __name__ == "__main__":
    main(globals())
