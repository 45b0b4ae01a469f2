#!/usr/bin/python3
"""Signed and forged JWTs for the tests of identity/ (Debian's python3-cryptography).

Used by tests/integration/test_jwt.py (tokens made at test time) and, run as a script, writes
src/identity/jwt_vectors.h: the same keys and table as C strings for src/identity/oidc_test.c
(tokens there expire in 2100, or expired in 2001, so they do not depend on when the test runs).

    python3 src/identity/jwt_forge.py > src/identity/jwt_vectors.h
"""
import base64
import hashlib
import hmac
import json
import sys
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def b64u_json(obj):
    return b64u(json.dumps(obj, separators=(",", ":")).encode())


def _int_bytes(n, size=None):
    size = size or (n.bit_length() + 7) // 8
    return n.to_bytes(size, "big")


class Keys:
    """One key per algorithm family, their JWKs (kid = family name), and a weak RSA-1024 key."""

    def __init__(self, prefix=""):
        self.prefix = prefix
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.rsa1024 = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        self.p256 = ec.generate_private_key(ec.SECP256R1())
        self.p384 = ec.generate_private_key(ec.SECP384R1())
        self.ed = ed25519.Ed25519PrivateKey.generate()

    def kid(self, name):
        return self.prefix + name

    def jwks(self, names=("rsa", "p256", "p384", "ed", "rsa1024")):
        keys = []
        for name in names:
            k = getattr(self, name if name != "ed" else "ed")
            if name in ("rsa", "rsa1024"):
                pn = k.public_key().public_numbers()
                keys.append({"kty": "RSA", "kid": self.kid(name), "use": "sig", "n": b64u(_int_bytes(pn.n)),
                             "e": b64u(_int_bytes(pn.e))})
            elif name in ("p256", "p384"):
                pn = k.public_key().public_numbers()
                size = 32 if name == "p256" else 48
                keys.append({"kty": "EC", "kid": self.kid(name), "crv": "P-256" if name == "p256" else "P-384",
                             "x": b64u(_int_bytes(pn.x, size)), "y": b64u(_int_bytes(pn.y, size))})
            else:
                raw = k.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
                keys.append({"kty": "OKP", "kid": self.kid(name), "crv": "Ed25519", "x": b64u(raw)})
        return {"keys": keys}

    def public_pem(self):
        return self.rsa.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)


ALG_KEY = {"RS256": "rsa", "RS384": "rsa", "RS512": "rsa", "PS256": "rsa", "PS384": "rsa", "PS512": "rsa",
           "ES256": "p256", "ES384": "p384", "EdDSA": "ed"}
HASH = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}


def sign(keys, alg, signing_input, keyname=None):
    """The JWS signature bytes of signing_input (bytes) with alg, by the key family's private key."""
    k = getattr(keys, keyname or ALG_KEY[alg])
    if alg.startswith("RS"):
        return k.sign(signing_input, padding.PKCS1v15(), HASH[alg[2:]]())
    if alg.startswith("PS"):
        h = HASH[alg[2:]]()
        return k.sign(signing_input, padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size), h)
    if alg.startswith("ES"):
        der = k.sign(signing_input, ec.ECDSA(HASH[alg[2:]]()))
        r, s = decode_dss_signature(der)
        size = 32 if alg == "ES256" else 48
        return _int_bytes(r, size) + _int_bytes(s, size)
    if alg == "EdDSA":
        return k.sign(signing_input)
    raise ValueError(alg)


def make(keys, claims, alg="RS256", header=None, kid=None, keyname=None, raw_payload=None, raw_header=None):
    """A signed compact JWS. header adds/overrides members; raw_* replace a part's JSON text."""
    h = {"alg": alg, "typ": "JWT", "kid": kid if kid is not None else keys.kid(keyname or ALG_KEY.get(alg, "rsa"))}
    h.update(header or {})
    hp = b64u(raw_header) if raw_header is not None else b64u_json(h)
    pp = b64u(raw_payload) if raw_payload is not None else b64u_json(claims)
    si = (hp + "." + pp).encode()
    return hp + "." + pp + "." + b64u(sign(keys, alg if alg in ALG_KEY else "RS256", si, keyname))


def claims(issuer, audience, sub, ttl=3600, now=None, **extra):
    now = int(time.time()) if now is None else now
    c = {"iss": issuer, "aud": audience, "sub": sub, "iat": now, "exp": now + ttl}
    c.update(extra)
    return c


def forged(keys, issuer, audience, sub, now=None, exp_far=None, future=None):
    """[(name, token)]: each must be refused (28P01). keys' JWKS is the issuer's. future: a time to come."""
    now = int(time.time()) if now is None else now
    future = future or now + 3600
    c = claims(issuer, audience, sub, now=now)
    if exp_far:
        c["exp"] = exp_far
    good = make(keys, c)
    h, p, s = good.split(".")
    pem = keys.public_pem()
    out = []
    out.append(("alg none", b64u_json({"alg": "none", "typ": "JWT"}) + "." + p + "."))
    out.append(("alg none with a signature", b64u_json({"alg": "none", "typ": "JWT", "kid": keys.kid("rsa")}) + "." + p +
                "." + s))
    hs_h = b64u_json({"alg": "HS256", "typ": "JWT", "kid": keys.kid("rsa")})
    out.append(("HS256 signed with the public key", hs_h + "." + p + "." +
                b64u(hmac.new(pem, (hs_h + "." + p).encode(), hashlib.sha256).digest())))
    out.append(("wrong kid", make(keys, c, kid=keys.kid("nope"))))
    out.append(("stripped signature", h + "." + p + "."))
    tampered = dict(c, sub=sub + "-admin")
    out.append(("modified payload", h + "." + b64u_json(tampered) + "." + s))
    out.append(("expired", make(keys, dict(c, exp=now - 3600, iat=now - 7200))))
    out.append(("future nbf", make(keys, dict(c, nbf=future))))
    out.append(("future iat", make(keys, dict(c, iat=future))))
    out.append(("no exp", make(keys, {k: v for k, v in c.items() if k != "exp"})))
    out.append(("wrong iss", make(keys, dict(c, iss=issuer + "/evil"))))
    out.append(("wrong aud", make(keys, dict(c, aud="someone-else"))))
    out.append(("aud array without audience", make(keys, dict(c, aud=["a", "b"]))))
    jwk = keys.jwks(("rsa",))["keys"][0]
    out.append(("embedded jwk", make(keys, c, header={"jwk": jwk})))
    out.append(("jku elsewhere", make(keys, c, header={"jku": "https://evil.example/jwks.json"})))
    out.append(("x5u", make(keys, c, header={"x5u": "https://evil.example/cert.pem"})))
    out.append(("x5c", make(keys, c, header={"x5c": ["MIIB"]})))
    out.append(("crit", make(keys, c, header={"crit": ["exp"], "exp": 1})))
    es_h = b64u_json({"alg": "ES256", "typ": "JWT", "kid": keys.kid("p256")})
    out.append(("ES256 r = s = 0", es_h + "." + p + "." + b64u(bytes(64))))
    out.append(("ES256 r = n", es_h + "." + p + "." + b64u(_int_bytes(P256_N, 32) + _int_bytes(1, 32))))
    es_good = make(keys, c, alg="ES256")
    eh, ep, es = es_good.split(".")
    sig = base64.urlsafe_b64decode(es + "=" * (-len(es) % 4))
    r, s_ = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    out.append(("ES256 s + n (malleated)", eh + "." + ep + "." + b64u(_int_bytes(r, 32) + _int_bytes(s_ + P256_N, 33))))
    out.append(("ES256 as DER", eh + "." + ep + "." + b64u(encode_dss_signature(r, s_))))
    out.append(("truncated", good[:-12]))
    out.append(("1 MB", make(keys, dict(c, pad="x" * (1024 * 1024)))))
    out.append(("just over 16 kB", make(keys, dict(c, pad="x" * 12300))))
    out.append(("non-JSON payload", make(keys, None, raw_payload=b"sub=alice;exp=99999999999")))
    out.append(("payload a JSON array", make(keys, None, raw_payload=b'["sub","alice"]')))
    dup = ('{"iss":%s,"aud":%s,"sub":"someone","sub":%s,"exp":%d}'
           % (json.dumps(issuer), json.dumps(audience), json.dumps(sub), c["exp"])).encode()
    out.append(("duplicate claims", make(keys, None, raw_payload=dup)))
    duph = ('{"alg":"none","alg":"RS256","kid":%s}' % json.dumps(keys.kid("rsa"))).encode()
    out.append(("duplicate header alg", make(keys, c, raw_header=duph)))
    out.append(("RSA 1024-bit key", make(keys, c, kid=keys.kid("rsa1024"), keyname="rsa1024")))
    out.append(("kid of an EC key with RS256", make(keys, c, alg="RS256", kid=keys.kid("p256"))))
    out.append(("kid of an RSA key with ES256", make(keys, c, alg="ES256", kid=keys.kid("rsa"))))
    out.append(("kid of Ed25519 with ES256", make(keys, c, alg="ES256", kid=keys.kid("ed"), keyname="p256")))
    out.append(("ES512 (not allowed)", make(keys, c, alg="ES512", header={"alg": "ES512"})))
    out.append(("PS256 signature under RS256", h + "." + p + "." +
                b64u(sign(keys, "PS256", (h + "." + p).encode()))))
    out.append(("base64 padding", good + "=="))
    out.append(("standard base64 alphabet", h + "." + p + "." + s.replace("-", "+").replace("_", "/") + "+/"))
    last = s[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    # 256-byte signature: 342 characters, the last holds 4 bits and 2 unused ones
    noncanon = alphabet[alphabet.index(last) ^ 1]
    out.append(("non-canonical base64url", h + "." + p + "." + s[:-1] + noncanon))
    out.append(("four parts", good + ".AAAA"))
    out.append(("no sub", make(keys, {k: v for k, v in c.items() if k != "sub"})))
    out.append(("sub not an identity name", make(keys, dict(c, sub="robert'); DROP TABLE x;--"))))
    return out


def valid(keys, issuer, audience, sub, now=None, exp_far=None):
    """[(alg, token)] for every allowed algorithm."""
    c = claims(issuer, audience, sub, now=now)
    if exp_far:
        c["exp"] = exp_far
    return [(alg, make(keys, c, alg=alg)) for alg in ALG_KEY]


def _c_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


if __name__ == "__main__":
    keys = Keys()
    iss, aud, sub = "https://issuer.test", "pgmoat", "alice"
    far = 4102444800  # 2100-01-01
    print("/* Generated by src/identity/jwt_forge.py: keys and tokens for oidc_test.c. Do not edit. */")
    print("#define JWTV_ISSUER %s\n#define JWTV_AUDIENCE %s\n#define JWTV_SUB %s" % (_c_str(iss), _c_str(aud), _c_str(sub)))
    print("static const char jwtv_jwks[] = %s;" % _c_str(json.dumps(keys.jwks())))
    print("static const struct { const char *alg, *token; } jwtv_valid[] = {")
    for alg, t in valid(keys, iss, aud, sub, now=1700000000, exp_far=far):
        print("\t{%s, %s}," % (_c_str(alg), _c_str(t)))
    print("};")
    print("static const struct { const char *name, *token; } jwtv_forged[] = {")
    for name, t in forged(keys, iss, aud, sub, now=1700000000, exp_far=far, future=far - 86400):
        if len(t) > 20000:
            continue  # the 1 MB token is made at run time in C (a literal that size helps nobody)
        print("\t{%s, %s}," % (_c_str(name), _c_str(t)))
    print("};")
