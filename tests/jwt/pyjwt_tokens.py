#!/usr/bin/python3
"""Signs tokens with Debian's python3-jwt (PyJWT) for tests/unit/test_jwt.c.

Prints one line per case: EXPECT <TAB> ALG <TAB> public JWK (JSON) <TAB> token.
EXPECT is the jwt_status_name() the C side must report. Keys are made fresh on
every run, so the C verifier is checked against an independent signer rather
than against vectors it has seen before. Exits 77 when PyJWT is missing.
"""
import json
import sys
import time

try:
    import jwt
    from jwt import algorithms
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
except ImportError:
    sys.exit(77)


def to_jwk(alg_class, key):
    jwk = alg_class.to_jwk(key)
    return json.loads(jwk) if isinstance(jwk, str) else jwk


def main():
    now = int(time.time())
    claims = {"iss": "pyjwt", "aud": ["other", "hostgate"], "sub": "alice",
              "role": ["reader", "admin"], "scope": "read write", "level": 3,
              "iat": now, "nbf": now - 10, "exp": now + 600}
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_keys = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(), "ES512": ec.SECP521R1()}
    secrets = {"HS256": b"k" * 32, "HS384": b"l" * 48, "HS512": b"m" * 64}
    cases = []
    for alg, secret in secrets.items():
        cases.append((alg, secret, to_jwk(algorithms.HMACAlgorithm, secret)))
    for alg in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"):
        cases.append((alg, rsa_key, to_jwk(algorithms.RSAAlgorithm, rsa_key.public_key())))
    for alg, curve in ec_keys.items():
        key = ec.generate_private_key(curve)
        cases.append((alg, key, to_jwk(algorithms.ECAlgorithm, key.public_key())))
    ed = ed25519.Ed25519PrivateKey.generate()
    cases.append(("EdDSA", ed, to_jwk(algorithms.OKPAlgorithm, ed.public_key())))

    out = []
    for alg, key, jwk in cases:
        jwk["kid"] = "py-" + alg
        headers = {"kid": jwk["kid"]}
        out.append(("ok", alg, jwk, jwt.encode(claims, key, algorithm=alg, headers=headers)))
        expired = dict(claims, exp=now - 3600, nbf=now - 7200)
        out.append(("expired", alg, jwk, jwt.encode(expired, key, algorithm=alg, headers=headers)))
        wrong_aud = dict(claims, aud="someone-else")
        out.append(("bad-audience", alg, jwk, jwt.encode(wrong_aud, key, algorithm=alg, headers=headers)))
    for expect, alg, jwk, token in out:
        if isinstance(token, bytes):
            token = token.decode("ascii")
        print("\t".join((expect, alg, json.dumps(jwk, separators=(",", ":")), token)))


if __name__ == "__main__":
    main()
