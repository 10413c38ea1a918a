"""Documents and credentials for the policy tests (test_policies.py,
test_cors_browser.py): subscription keys, JWT signing keys made at import
time, and the configuration document: the base document of conftest plus
APIs, products, subscriptions, pools and a global policy. Every API of this
module's document has an id starting with "pt-", so that it cannot collide
with the base document's.
"""

import base64
import copy
import hashlib
import hmac
import json
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm

from servers import closed_port

# ---- subscription keys ------------------------------------------------------

KEY_PRIMARY = "pt-acme-primary-0123456789"
KEY_SECONDARY = "pt-acme-secondary-0123456789"
KEY_SUSPENDED = "pt-suspended-0123456789"
KEY_EXPIRED = "pt-expired-0123456789"
KEY_SILVER = "pt-silver-0123456789"          # product:pt-silver, not pt-gold
KEY_API_SCOPE = "pt-apiscope-0123456789"     # api:pt-scope, no product
KEY_ALL = "pt-all-0123456789"                # scope all
KEY_UNKNOWN = "pt-nobody-0123456789"

MSG_MISSING_KEY = ("Access denied due to missing subscription key. Make sure to include "
                   "subscription key when making requests to an API.")
MSG_INVALID_KEY = ("Access denied due to invalid subscription key. Make sure to provide a "
                   "valid key for an active subscription.")


def sha256_hex(s):
    return hashlib.sha256(s.encode()).hexdigest()


# ---- JWT keys and tokens -------------------------------------------------------

JWT_ISSUER = "https://idp.hostgate.test"
JWT_AUDIENCE = "hostgate-tests"
HS_SECRET = b"pt-hmac-secret-that-is-at-least-32-bytes-long!"

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_PUB_PEM = RSA_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
OTHER_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
EC_PUB_JWK = json.loads(ECAlgorithm.to_jwk(EC_KEY.public_key()))


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def claims(sub="alice", aud=JWT_AUDIENCE, iss=JWT_ISSUER, exp_in=300, **extra):
    now = int(time.time())
    c = {"sub": sub, "aud": aud, "iss": iss, "iat": now,
         "exp": None if exp_in is None else now + exp_in}
    c.update(extra)
    return {k: v for k, v in c.items() if v is not None}


def token_rs256(c, key=None):
    return jwt.encode(c, key or RSA_KEY, algorithm="RS256")


def token_hs256(c, secret=HS_SECRET):
    return jwt.encode(c, secret, algorithm="HS256")


def token_es256(c):
    return jwt.encode(c, EC_KEY, algorithm="ES256")


def token_hs256_raw(c, secret):
    """HS256 by hand: PyJWT refuses a PEM public key as an HMAC secret, which
    is exactly what an algorithm-confusion attacker uses."""
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps(c).encode())
    sig = hmac.new(secret, ("%s.%s" % (head, body)).encode(), hashlib.sha256).digest()
    return "%s.%s.%s" % (head, body, b64url(sig))


def token_alg_none(c):
    head = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return "%s.%s." % (head, b64url(json.dumps(c).encode()))


def tampered(tok, **changes):
    """tok with its payload changed and its signature kept."""
    head, body, sig = tok.split(".")
    c = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    c.update(changes)
    return "%s.%s.%s" % (head, b64url(json.dumps(c).encode()), sig)


# ---- policy builders -------------------------------------------------------------

BASE = {"base": {}}


def trail(tag):
    """set-header that appends >tag to X-Trail, reading what the policies
    before it left: the final value shows the order the scopes ran in."""
    return {"set-header": {"name": "X-Trail", "exists-action": "override",
                           "value": "${request.header.X-Trail}>" + tag}}


def set_header(name, value, action="override"):
    return {"set-header": {"name": name, "exists-action": action, "value": value}}


def op(op_id, method, template, **sections):
    o = {"id": op_id, "method": method, "url_template": template}
    if sections:
        o["policies"] = sections
    return o


def api(api_id, backend, required=False, ops=None, policies=None, **kw):
    a = {"id": api_id, "path": api_id, "backend": backend, "subscription_required": required}
    if ops:
        a["operations"] = ops
    if policies:
        a["policies"] = policies
    a.update(kw)
    return a


def jwt_policy(keys):
    return {"validate-jwt": {"issuer-signing-keys": keys, "audiences": [JWT_AUDIENCE],
                             "issuers": [JWT_ISSUER]}}


# numbers the tests rely on
RL_BIG = 50             # rate-limit / quota under concurrency
RL_SMALL = 3
CONC_MAX = 2
CB_FAILURES = 2
CORS_ORIGIN = "http://allowed.hostgate.test"


def policy_doc(base, httpbin, nginx, dead_port):
    """base (conftest's document) plus everything test_policies.py uses."""
    doc = copy.deepcopy(base)
    dead = "http://127.0.0.1:%d" % dead_port
    dead2 = "http://127.0.0.1:%d" % closed_port()
    doc["named_values"].update({
        "pt-nv": {"value": "named-value-42", "secret": False},
        "pt-hs-secret": {"value": base64.b64encode(HS_SECRET).decode(), "secret": True},
    })
    doc["backends"].update({
        "pt-pool": {"pool": [{"url": dead + "/dead-pool"},
                             {"url": nginx.url("/echo/pool-live")}],
                    "connect_timeout_ms": 2000,
                    "circuit_breaker": {"failures": CB_FAILURES, "interval_s": 60,
                                        "trip_duration_s": 600}},
        "pt-prio": {"pool": [{"url": nginx.url("/echo/prio-2"), "priority": 2},
                             {"url": nginx.url("/echo/prio-1"), "priority": 1}]},
        "pt-weight": {"pool": [{"url": nginx.url("/echo/w-light"), "weight": 1},
                               {"url": nginx.url("/echo/w-heavy"), "weight": 99}]},
        "pt-alldead": {"pool": [{"url": dead + "/dead-a"}, {"url": dead2 + "/dead-b"}],
                       "connect_timeout_ms": 2000,
                       "circuit_breaker": {"failures": 1, "interval_s": 60,
                                           "trip_duration_s": 600}},
    })
    doc["policies"] = {"inbound": [trail("G")]}
    doc["products"] = [
        {"id": "pt-gold", "apis": ["pt-sub", "pt-subn", "pt-subkey", "pt-scope"],
         "policies": {"inbound": [trail("P"), BASE, set_header("X-Product", "${product.id}")]}},
        {"id": "pt-silver", "apis": ["pt-sub2"]},
    ]
    doc["subscriptions"] = [
        {"id": "pt-acme", "scope": "product:pt-gold", "state": "active",
         "keys_sha256": [sha256_hex(KEY_PRIMARY), sha256_hex(KEY_SECONDARY)],
         "expires": "2099-01-01T00:00:00Z"},
        {"id": "pt-suspended", "scope": "product:pt-gold", "state": "suspended",
         "keys_sha256": [sha256_hex(KEY_SUSPENDED)]},
        {"id": "pt-expired", "scope": "product:pt-gold", "state": "active",
         "keys_sha256": [sha256_hex(KEY_EXPIRED)], "expires": "2001-01-01T00:00:00Z"},
        {"id": "pt-silver-sub", "scope": "product:pt-silver", "state": "active",
         "keys_sha256": [sha256_hex(KEY_SILVER)]},
        {"id": "pt-apisub", "scope": "api:pt-scope", "state": "active",
         "keys_sha256": [sha256_hex(KEY_API_SCOPE)]},
        {"id": "pt-allsub", "scope": "all", "state": "active",
         "keys_sha256": [sha256_hex(KEY_ALL)]},
    ]
    sub_headers = {"inbound": [BASE, set_header("X-Sub", "${subscription.id}")]}
    conc = {"limit-concurrency": {"key": "pt-conc-seat", "max-count": CONC_MAX}}

    def rl(calls, **kw):
        return {"rate-limit": dict({"calls": calls, "renewal-period": 600,
                                    "remaining-calls-header-name": "X-Remaining",
                                    "total-calls-header-name": "X-Total"}, **kw)}

    def rlk(calls, **kw):
        return {"rate-limit-by-key": dict({"calls": calls, "renewal-period": 600,
                                           "counter-key": "${request.header.X-Client}"}, **kw)}

    doc["apis"] = doc["apis"] + [
        # subscriptions
        api("pt-sub", "anything", required=True, policies=sub_headers),
        api("pt-subn", "echo", required=True),
        api("pt-sub2", "anything", required=True, policies=sub_headers),
        api("pt-subkey", "anything", required=True, policies=sub_headers,
            subscription_key={"header": "X-Pt-Key", "query": "pt-key"}),
        # scopes: API [A1, base, A2], operation [O, base] / [O2] / (none)
        api("pt-scope", "anything", required=True,
            policies={"inbound": [trail("A1"), BASE, trail("A2")]},
            ops=[op("trail", "GET", "/trail", inbound=[trail("O"), BASE]),
                 op("nobase", "GET", "/nobase", inbound=[trail("O2")]),
                 op("plain", "GET", "/plain")]),
        # request-changing policies, seen by httpbin's /anything
        api("pt-pol", "anything", ops=[
            op("hdr", "GET", "/hdr", inbound=[
                set_header("X-Ip", "${request.ip}"),
                set_header("X-Named", "{{pt-nv}}"),
                set_header("X-Copy", "${request.header.X-In}"),
                set_header("X-Meta", "${api.id}/${operation.id}/${request.method}$$"),
                {"set-header": {"name": "X-Drop", "exists-action": "delete"}},
                {"set-header": {"name": "X-Keep", "exists-action": "skip", "value": "lost"}},
                {"set-header": {"name": "X-Multi", "exists-action": "append",
                                "value": ["m1", "m2"]}},
                {"set-query-parameter": {"name": "added", "value": "${request.query.q}"}},
                {"set-query-parameter": {"name": "gone", "exists-action": "delete"}},
            ], outbound=[set_header("X-Out", "out-{{pt-nv}}"),
                         {"set-header": {"name": "Server", "exists-action": "delete"}}]),
            op("rewrite", "GET", "/items/{id}", inbound=[
                {"rewrite-uri": {"template": "/rewritten/{id}/v2?from=${request.query.q}",
                                 "copy-unmatched-params": False}}]),
            op("method", "GET", "/method", inbound=[{"set-method": {"method": "POST"}}]),
            op("trace", "GET", "/trace", inbound=[{"trace": {
                "source": "pt-trace", "severity": "information",
                "message": "token ${request.query.t} from ${request.header.X-Note}"}}]),
            op("status", "GET", "/status", outbound=[{"set-status": {"code": 203,
                                                                     "reason": "Changed"}}]),
            op("basic", "GET", "/basic", inbound=[
                {"authentication-basic": {"username": "pt-user", "password": "{{svc-pass}}"}}]),
            op("setbe", "GET", "/setbe", inbound=[
                {"set-backend-service": {"backend-id": "echo"}}]),
        ]),
        # policies that answer or refuse: the backend is nginx's echo, whose log
        # shows whether anything went upstream
        api("pt-poln", "echo", ops=[
            op("return", "GET", "/return", inbound=[
                {"return-response": {"status-code": 418,
                                     "headers": {"Content-Type": "text/plain",
                                                 "X-R": "${request.header.X-In}"},
                                     "body": "hello ${request.query.name} from ${api.id}"}}]),
            op("mock", "GET", "/mock", inbound=[
                {"mock-response": {"status-code": 201, "content-type": "application/json",
                                   "body": "{\"mock\": true}"}}]),
            op("check", "GET", "/check", inbound=[
                {"check-header": {"name": "X-Version", "failed-check-httpcode": 400,
                                  "failed-check-error-message": "bad version",
                                  "ignore-case": True, "value": ["1", "v2"]}}]),
            op("forbid", "GET", "/forbid", inbound=[
                {"ip-filter": {"action": "forbid", "address": ["127.0.0.0/8"]}}]),
            op("allow", "GET", "/allow", inbound=[
                {"ip-filter": {"action": "allow", "address": ["127.0.0.1"]}}]),
            op("allow-other", "GET", "/allow-other", inbound=[
                {"ip-filter": {"action": "allow", "address": ["10.0.0.0/8", "2001:db8::/32"],
                               "address-range": {"from": "192.168.0.1",
                                                 "to": "192.168.0.9"}}}]),
            op("inject-q", "GET", "/inject-q", inbound=[set_header("X-Injected",
                                                                   "${request.query.v}")]),
            op("inject-h", "GET", "/inject-h", inbound=[set_header("X-Injected",
                                                                   "${request.header.X-In}")]),
        ]),
        # backend-section policies on httpbin's root
        api("pt-hb", "httpbin", ops=[
            op("retry", "GET", "/status/{code}", backend=[
                BASE, {"retry": {"condition": ["5xx"], "count": 2, "interval": 0}}]),
            op("noretry", "GET", "/anything/{x}"),
            op("timeout", "GET", "/delay/{n}", backend=[
                BASE, {"forward-request": {"timeout": 1}}]),
        ]),
        # limits (nginx's echo: fast, and its log counts what went upstream)
        api("pt-lim", "echo", ops=[
            op("rl-big", "GET", "/rl-big", inbound=[rl(RL_BIG)]),
            op("rlk-big", "GET", "/rlk-big", inbound=[rlk(RL_BIG)]),
            op("quota-big", "GET", "/quota-big", inbound=[
                {"quota": {"calls": RL_BIG, "renewal-period": 3600}}]),
            op("rl", "GET", "/rl", inbound=[rl(RL_SMALL)]),
            op("rlk", "GET", "/rlk", inbound=[rlk(RL_SMALL)]),
            op("quota", "GET", "/quota", inbound=[
                {"quota": {"calls": RL_SMALL, "renewal-period": 3600}}]),
        ]),
        api("pt-conc", "httpbin", ops=[op("delay", "GET", "/delay/{n}", inbound=[conc])]),
        # validate-jwt: one key type per API, sub claim forwarded as X-Keep
        # (a field of nginx's echo)
        api("pt-jwt-rs", "echo", policies={"inbound": [
            jwt_policy([{"pem": RSA_PUB_PEM.decode()}]),
            set_header("X-Keep", "${jwt.claim.sub}")]}),
        api("pt-jwt-hs", "echo", policies={"inbound": [
            jwt_policy(["{{pt-hs-secret}}"]), set_header("X-Keep", "${jwt.claim.sub}")]}),
        api("pt-jwt-es", "echo", policies={"inbound": [
            jwt_policy([EC_PUB_JWK]), set_header("X-Keep", "${jwt.claim.sub}")]}),
        # cors
        api("pt-cors", "echo", policies={"inbound": [
            {"cors": {"allowed-origins": [CORS_ORIGIN], "allowed-methods": ["GET", "PUT"],
                      "allowed-headers": ["X-Custom"], "expose-headers": ["X-Exposed"],
                      "preflight-result-max-age": 300}}]}),
        # pools and circuit breakers
        api("pt-pool", "pt-pool"),
        api("pt-prio", "pt-prio"),
        api("pt-weight", "pt-weight"),
        api("pt-alldead", "pt-alldead"),
    ]
    return doc


def cors_doc(nginx_url, origin, generation=1):
    """A small document for the browser test: one API on nginx's echo behind
    cors allowing origin (GET, PUT, header X-Custom)."""
    return {
        "format": 1, "generation": generation,
        "backends": {"echo": {"url": nginx_url}},
        "apis": [{"id": "data", "path": "data", "backend": "echo",
                  "subscription_required": False,
                  "policies": {"inbound": [
                      {"cors": {"allowed-origins": [origin],
                                "allowed-methods": ["GET", "PUT"],
                                "allowed-headers": ["X-Custom", "Content-Type"],
                                "expose-headers": ["X-Request-Id"],
                                "preflight-result-max-age": 0}}]}}],
    }


# ---- every JWT algorithm (test_policies_audit.py) ------------------------------------
#
# One key of each kind a validate-jwt may hold, and a second one of each that
# the gateway does not know ("another key"). The HMAC secret is 64 bytes so
# that it serves HS512 too (RFC 7518 3.2: at least the hash size).

from cryptography.hazmat.primitives.asymmetric import ed25519  # noqa: E402
from jwt.algorithms import OKPAlgorithm  # noqa: E402

ALL_ALGS = ["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
            "ES256", "ES384", "ES512", "EdDSA"]
HS_SECRET_64 = (b"pa-hmac-secret-for-hs512-" * 3)[:64]
assert len(HS_SECRET_64) == 64
OTHER_HS_SECRET_64 = (b"pa-another-secret-never-seen-" * 3)[:64]
assert len(OTHER_HS_SECRET_64) == 64
_CURVES = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1, "ES512": ec.SECP521R1}
EC_KEYS = {alg: ec.generate_private_key(curve()) for alg, curve in _CURVES.items()}
OTHER_EC_KEYS = {alg: ec.generate_private_key(_CURVES[alg]()) for alg in _CURVES}
ED_KEY = ed25519.Ed25519PrivateKey.generate()
OTHER_ED_KEY = ed25519.Ed25519PrivateKey.generate()


def signing_key(alg, other=False):
    """The private key (or secret) that signs alg tokens; other: one the
    gateway does not hold."""
    if alg.startswith("HS"):
        return OTHER_HS_SECRET_64 if other else HS_SECRET_64
    if alg[:2] in ("RS", "PS"):
        return OTHER_RSA_KEY if other else RSA_KEY
    if alg.startswith("ES"):
        return (OTHER_EC_KEYS if other else EC_KEYS)[alg]
    return OTHER_ED_KEY if other else ED_KEY


def public_pem(alg):
    """The PEM text of alg's public key (an HS alg: None)."""
    k = signing_key(alg)
    if isinstance(k, bytes):
        return None
    return k.public_key().public_bytes(serialization.Encoding.PEM,
                                       serialization.PublicFormat.SubjectPublicKeyInfo)


def all_alg_keys():
    """issuer-signing-keys holding one key for every algorithm, each in a
    different configuration form: base64 secret, PEM, EC and OKP JWKs."""
    keys = [base64.b64encode(HS_SECRET_64).decode(), {"pem": RSA_PUB_PEM.decode()}]
    for alg in ("ES256", "ES384", "ES512"):
        keys.append(json.loads(ECAlgorithm.to_jwk(EC_KEYS[alg].public_key())))
    keys.append(json.loads(OKPAlgorithm.to_jwk(ED_KEY.public_key())))
    return keys


def token_alg(alg, c, other=False):
    t = jwt.encode(c, signing_key(alg, other), algorithm=alg)
    return t.decode() if isinstance(t, bytes) else t


def flipped_signature(tok):
    """tok with one bit of its signature's middle byte changed."""
    head, body, sig = tok.split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[len(raw) // 2] ^= 0x01
    return "%s.%s.%s" % (head, body, b64url(bytes(raw)))
