#!/usr/bin/python3
"""Issue 8, mutual TLS: a client certificate signed by tls.client_ca logs in without a password.

Certificates are made here with python3-cryptography, signed by the test CA (or another CA).
Checked with libpq (psycopg): the CN mapping, the SPIFFE mapping (spiffe://example.org/ns/prod/sa/etl
is identity ns:prod:sa:etl; another trust domain, no URI SAN, two URI SANs refused), a user that is
not the certificate's identity (28000), an unknown identity (28000), expired, not-yet-valid,
wrong-CA and revoked (tls.crl) certificates refused with 28P01 and OpenSSL's reason, token logins
still working beside certificates, and a certificate valid for a few seconds ending its session
with 57P01 within 1 s of its notAfter.
"""
import datetime
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from harness import Certs, Gateway, main, make_tempdir, shared_postgres  # noqa: E402
from rawpg import error_fields  # noqa: E402

import psycopg  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

S = {}
UTC = datetime.timezone.utc


def load_ca(certs):
    with open(certs.ca, "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    with open(certs.ca_key, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    return ca, key


def other_ca():
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "another CA")])
    now = datetime.datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert, key


def client_cert(name, cn=None, uris=(), not_before=None, not_after=None, ca=None):
    """Write NAME.crt / NAME.key signed by ca (default: the test CA); returns (crt, key, serial)."""
    ca_cert, ca_key = ca or S["ca"]
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else [
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pgmoat tests")])
    serial = x509.random_serial_number()
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_cert.subject).public_key(key.public_key())
         .serial_number(serial).not_valid_before(not_before or now - datetime.timedelta(hours=1))
         .not_valid_after(not_after or now + datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
    if uris:
        b = b.add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in uris]),
                            critical=False)
    cert = b.sign(ca_key, hashes.SHA256())
    crt = os.path.join(S["dir"], name + ".crt")
    kf = os.path.join(S["dir"], name + ".key")
    with open(crt, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(kf, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    os.chmod(kf, 0o600)
    return crt, kf, serial


def write_crl(revoked_serials, name="ca.crl"):
    ca_cert, ca_key = S["ca"]
    now = datetime.datetime.now(UTC)
    b = (x509.CertificateRevocationListBuilder().issuer_name(ca_cert.subject).last_update(now - datetime.timedelta(hours=1))
         .next_update(now + datetime.timedelta(days=1)))
    for s in revoked_serials:
        b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(s)
                                      .revocation_date(now - datetime.timedelta(minutes=5)).build())
    crl = b.sign(ca_key, hashes.SHA256())
    path = os.path.join(S["dir"], name)
    with open(path + ".tmp", "wb") as f:
        f.write(crl.public_bytes(serialization.Encoding.PEM))
    os.replace(path + ".tmp", path)
    return path


def setup_module():
    pg = shared_postgres()
    certs = Certs()
    S.update(pg=pg, certs=certs, dir=make_tempdir("pgmoat-mtls-"), ca=load_ca(certs))
    S["revoked"] = client_cert("revoked", cn="agent-revoked")
    crl = write_crl([S["revoked"][2]])
    tls_extra = ["client_ca: file:%s" % certs.ca, "crl: file:%s" % crl]
    S["gw"] = Gateway(pg, tls=certs, plaintext_loopback=False, tls_extra=tls_extra,
                      extra="identity:\n  mtls: {identity_from: cn}\n").start()
    S["spiffe"] = Gateway(pg, tls=certs, plaintext_loopback=False, tls_extra=tls_extra,
                          extra="identity:\n  mtls: {identity_from: spiffe, trust_domain: example.org}\n").start()
    for n in ("agent-cn", "agent-revoked", "agent-short"):
        S["gw"].add_identity(n)
    S["spiffe"].add_identity("ns:prod:sa:etl")


def cert_login(gw, user, cert, sql="SELECT current_user"):
    crt, key = cert[0], cert[1]
    dsn = ("host=127.0.0.1 port=%d dbname=main user=%s sslmode=verify-full sslrootcert=%s sslcert=%s sslkey=%s"
           % (gw.port, user, S["certs"].ca, crt, key))
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as c:
        return c.execute(sql).fetchone()[0]


def cert_refused(gw, user, cert):
    """The FATAL a certificate login gets, as (sqlstate, message) from the raw protocol through libpq's TLS."""
    try:
        cert_login(gw, user, cert)
    except psycopg.OperationalError as e:
        msg = str(e)
        assert "FATAL:  pgmoat: " in msg and msg.count("FATAL") == 1, msg
        return msg
    raise AssertionError("certificate login as %s succeeded" % user)


def sqlstate_of(gw, user, cert):
    """SQLSTATE of the refusal, read with the raw protocol over TLS with the client certificate."""
    import socket
    import ssl
    import struct
    s = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    s.sendall(struct.pack("!II", 8, 80877103))
    assert s.recv(1) == b"S"
    ctx = ssl.create_default_context(cafile=S["certs"].ca)
    ctx.load_cert_chain(cert[0], cert[1])
    s = ctx.wrap_socket(s, server_hostname="localhost")
    body = b"user\0" + user.encode() + b"\0database\0main\0\0"
    s.sendall(struct.pack("!II", 8 + len(body), 196608) + body)
    hdr = s.recv(5)
    data = b""
    ln = struct.unpack("!I", hdr[1:])[0] - 4
    while len(data) < ln:
        data += s.recv(ln - len(data))
    s.close()
    assert hdr[:1] == b"E", hdr
    return error_fields(data)["C"]


def test_cn_logs_in_without_password():
    cert = client_cert("cn", cn="agent-cn")
    assert cert_login(S["gw"], "agent-cn", cert) == "gw_scram"
    st, sessions = S["gw"].api("GET", "/v1/sessions")
    assert st == 200


def test_user_must_match_certificate():
    cert = client_cert("cn2", cn="agent-cn")
    msg = cert_refused(S["gw"], "agent-short", cert)
    assert "does not match the certificate's identity" in msg, msg
    assert sqlstate_of(S["gw"], "agent-short", cert) == "28000"
    unknown = client_cert("unknown", cn="nobody-here")
    msg = cert_refused(S["gw"], "nobody-here", unknown)
    assert "does not exist" in msg and sqlstate_of(S["gw"], "nobody-here", unknown) == "28000", msg


def test_expired_not_yet_valid_wrong_ca_revoked():
    now = datetime.datetime.now(UTC)
    cases = [
        ("expired", client_cert("expired", cn="agent-cn", not_before=now - datetime.timedelta(days=2),
                                not_after=now - datetime.timedelta(days=1)), "certificate has expired"),
        ("future", client_cert("future", cn="agent-cn", not_before=now + datetime.timedelta(days=1),
                               not_after=now + datetime.timedelta(days=2)), "certificate is not yet valid"),
        ("wrong CA", client_cert("wrongca", cn="agent-cn", ca=other_ca()), "unable to get local issuer certificate"),
        ("revoked", S["revoked"], "certificate revoked"),
    ]
    for name, cert, reason in cases:
        user = "agent-revoked" if name == "revoked" else "agent-cn"
        msg = cert_refused(S["gw"], user, cert)
        assert "client certificate refused: " + reason in msg, (name, msg)
        assert sqlstate_of(S["gw"], user, cert) == "28P01", name


def test_token_login_beside_certificates():
    name, tok = S["gw"].agent("agent-token")
    with psycopg.connect(S["gw"].dsn(name, tok, sslmode="verify-full"), autocommit=True) as c:
        assert c.execute("SELECT 1").fetchone()[0] == 1


def test_spiffe_mapping():
    gw = S["spiffe"]
    good = client_cert("svid", uris=["spiffe://example.org/ns/prod/sa/etl"])
    assert cert_login(gw, "ns:prod:sa:etl", good) == "gw_scram"
    for name, cert, reason in [
        ("other domain", client_cert("svid2", uris=["spiffe://evil.org/ns/prod/sa/etl"]), "trust domain example.org"),
        ("CN only", client_cert("svid3", cn="ns:prod:sa:etl"), "no single SPIFFE ID"),
        ("two URIs", client_cert("svid4", uris=["spiffe://example.org/ns/prod/sa/etl", "spiffe://example.org/x"]),
         "no single SPIFFE ID"),
        ("dot segment", client_cert("svid5", uris=["spiffe://example.org/ns/../sa/etl"]), "segment"),
    ]:
        msg = cert_refused(gw, "ns:prod:sa:etl", cert)
        assert reason in msg, (name, msg)


def test_certificate_expiry_ends_session():
    not_after = datetime.datetime.now(UTC).replace(microsecond=0) + datetime.timedelta(seconds=4)
    cert = client_cert("short", cn="agent-short", not_after=not_after)
    dsn = ("host=127.0.0.1 port=%d dbname=main user=agent-short sslmode=verify-full sslrootcert=%s sslcert=%s "
           "sslkey=%s" % (S["gw"].port, S["certs"].ca, cert[0], cert[1]))
    c = psycopg.connect(dsn, autocommit=True)
    try:
        c.execute("SELECT pg_sleep(15)")
        raise AssertionError("the session outlived its certificate")
    except psycopg.OperationalError as e:
        ended = time.time()
        assert "pgmoat: the client certificate that opened this session expired" in str(e), e
    finally:
        c.close()
    na = not_after.timestamp()
    assert na - 0.05 <= ended <= na + 1.0, ended - na


def test_crl_read_again_on_sighup():
    """SIGHUP reads tls.crl again: a certificate revoked since is refused at its next login; a CRL file that
    does not load keeps the one in force. No TLS session resumption could carry a certificate past it."""
    later = client_cert("later", cn="agent-later")
    crl = write_crl([S["revoked"][2]], name="reload.crl")
    gw = Gateway(S["pg"], tls=S["certs"], plaintext_loopback=False,
                 tls_extra=["client_ca: file:%s" % S["certs"].ca, "crl: file:%s" % crl],
                 extra="identity:\n  mtls: {identity_from: cn}\n").start()
    try:
        gw.add_identity("agent-later")
        gw.add_identity("agent-cn")
        assert cert_login(gw, "agent-later", later) == "gw_scram"
        write_crl([S["revoked"][2], later[2]], name="reload.crl")
        gw.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 5
        while "tls.crl read again" not in gw.read_log() and time.time() < deadline:
            time.sleep(0.05)
        assert "tls.crl read again" in gw.read_log(), gw.read_log()[-2000:]
        msg = cert_refused(gw, "agent-later", later)
        assert "client certificate refused: certificate revoked" in msg, msg
        assert cert_login(gw, "agent-cn", client_cert("cn2", cn="agent-cn")) == "gw_scram"
        # a CRL that does not load: logged, the one in force stays
        with open(crl, "w") as f:
            f.write("not a CRL\n")
        gw.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 5
        while "tls.crl not read again" not in gw.read_log() and time.time() < deadline:
            time.sleep(0.05)
        assert "tls.crl not read again" in gw.read_log(), gw.read_log()[-2000:]
        assert "certificate revoked" in cert_refused(gw, "agent-later", later)
        assert cert_login(gw, "agent-cn", client_cert("cn3", cn="agent-cn")) == "gw_scram"
    finally:
        assert gw.stop() == 0


def test_zz_stop_clean():
    assert S["gw"].stop() == 0
    assert S["spiffe"].stop() == 0


main(globals())
