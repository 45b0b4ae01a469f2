"""Reading exact error fields (severity, SQLSTATE) that psycopg 3.1 does not expose.

psycopg gives no SQLSTATE for a refused connection attempt, nor for a FATAL that arrives just
before the server closes the socket (it reports "consuming input failed: ..."). So:

- raw_login() / RawSession speak just enough of the protocol (SSLRequest, StartupMessage,
  cleartext password, simple Query) to return ErrorResponse fields as a dict:
  S severity, V, C sqlstate, M message, D detail, H hint;
- verbose_errors(conn) turns on libpq's PQERRORS_VERBOSE for a psycopg connection, so that
  a FATAL's text carries its SQLSTATE ("FATAL:  57P01: pgmoat: ..."), and error_sqlstate(e)
  reads it from either place.
"""
import ctypes
import re
import socket
import ssl
import struct


def _recv_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError("connection closed after %d of %d bytes" % (len(b), n))
        b += c
    return b


def read_msg(s):
    hdr = _recv_exact(s, 5)
    t, ln = hdr[:1], struct.unpack("!I", hdr[1:])[0]
    return t, _recv_exact(s, ln - 4)


def error_fields(body):
    out = {}
    for part in body.split(b"\0"):
        if part:
            out[chr(part[0])] = part[1:].decode("utf-8", "replace")
    return out


class RawSession:
    """A logged-in (or refused) raw protocol connection to the gateway."""

    def __init__(self, port, user, password, dbname="main", tls=True, cafile=None, params=None, timeout=15):
        self.error = None
        self.backend_key = None
        self.params = {}
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls:
            s.sendall(struct.pack("!II", 8, 80877103))
            if _recv_exact(s, 1) != b"S":
                s.close()
                raise AssertionError("the gateway refused TLS")
            ctx = ssl.create_default_context(cafile=cafile) if cafile else ssl._create_unverified_context()
            s = ctx.wrap_socket(s, server_hostname="localhost")
        self.sock = s
        kv = dict(user=user, database=dbname, **(params or {}))
        body = b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in kv.items()) + b"\0"
        s.sendall(struct.pack("!II", 8 + len(body), 196608) + body)
        while True:
            t, b = read_msg(s)
            if t == b"R":
                code = struct.unpack("!I", b[:4])[0]
                if code == 3:
                    pw = password.encode() + b"\0"
                    s.sendall(b"p" + struct.pack("!I", 4 + len(pw)) + pw)
                elif code != 0:
                    raise AssertionError("unexpected authentication request %d" % code)
            elif t == b"E":
                self.error = error_fields(b)
                self.close()
                return
            elif t == b"S":
                k, v = b[:-1].split(b"\0", 1)
                self.params[k.decode()] = v.decode()
            elif t == b"K":
                self.backend_key = struct.unpack("!II", b[:8])
            elif t == b"Z":
                return
            elif t == b"N":
                continue
            else:
                raise AssertionError("unexpected message %r during login" % t)

    @property
    def ok(self):
        return self.error is None

    def query(self, sql):
        """Simple query. Returns (rows, error_fields_or_None); rows are lists of str/None.
        Raises EOFError when the connection ends without an ErrorResponse."""
        q = sql.encode() + b"\0"
        self.sock.sendall(b"Q" + struct.pack("!I", 4 + len(q)) + q)
        rows, err = [], None
        while True:
            try:
                t, b = read_msg(self.sock)
            except (EOFError, OSError, ssl.SSLError):
                if err:
                    return rows, err
                raise
            if t == b"D":
                n = struct.unpack("!H", b[:2])[0]
                off, row = 2, []
                for _ in range(n):
                    ln = struct.unpack("!i", b[off:off + 4])[0]
                    off += 4
                    if ln < 0:
                        row.append(None)
                    else:
                        row.append(b[off:off + ln].decode())
                        off += ln
                rows.append(row)
            elif t == b"E":
                err = error_fields(b)
                if err.get("S") == "FATAL":
                    return rows, err
            elif t == b"Z":
                return rows, err

    def read_async(self):
        """Wait for one message the server sends on its own (e.g. a FATAL); returns (type, fields)."""
        t, b = read_msg(self.sock)
        return t, (error_fields(b) if t in (b"E", b"N") else b)

    def close(self):
        try:
            self.sock.sendall(b"X\0\0\0\4")
        except Exception:
            pass
        try:
            self.sock.close()
        except Exception:
            pass


def raw_login(gw, user, password, dbname="main", tls=None, params=None):
    """("ok", {}) when the login reaches ReadyForQuery, else ("error", fields)."""
    if tls is None:
        tls = bool(gw.certs)
    r = RawSession(gw.port, user, password, dbname, tls=tls, cafile=gw.certs.ca if gw.certs else None,
                   params=params)
    if r.ok:
        r.close()
        return "ok", {}
    return "error", r.error


_libpq = None


def verbose_errors(conn):
    """PQsetErrorVerbosity(conn, PQERRORS_VERBOSE): error texts then carry their SQLSTATE."""
    global _libpq
    if _libpq is None:
        from psycopg.pq import _pq_ctypes
        _libpq = _pq_ctypes.pq
        _libpq.PQsetErrorVerbosity.argtypes = [ctypes.c_void_p, ctypes.c_int]
        _libpq.PQsetErrorVerbosity.restype = ctypes.c_int
    _libpq.PQsetErrorVerbosity(conn.pgconn.pgconn_ptr, 2)
    return conn


_VERBOSE_RE = re.compile(r"(?:(ERROR|FATAL):  )?([0-9A-Z]{5}): (.*)")


def error_sqlstate(e, conn=None):
    """(severity, sqlstate, message) of a psycopg error: from its result when psycopg has one,
    else from the verbose text libpq accumulated on conn (call verbose_errors(conn) first, and
    pass conn before closing it: psycopg's own text drops the severity)."""
    if getattr(e, "sqlstate", None):
        diag = e.diag
        return diag.severity_nonlocalized or diag.severity, e.sqlstate, diag.message_primary or ""
    texts = []
    if conn is not None and conn.pgconn.pgconn_ptr is not None:
        texts.append(conn.pgconn.error_message.decode("utf-8", "replace"))
    texts.append(str(e))
    for t in texts:
        m = _VERBOSE_RE.search(t)
        if m:
            return m.group(1), m.group(2), m.group(3)
    return None, None, str(e)


def query_error(conn, sql, params=None):
    """Run sql on a psycopg connection (made verbose); return (severity, sqlstate, message) of the
    error it raises, or None when it succeeds."""
    import psycopg
    verbose_errors(conn)
    try:
        conn.execute(sql, params)
    except psycopg.Error as e:
        return error_sqlstate(e, conn)
    return None
