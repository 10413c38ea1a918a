"""A fake of Azure Resource Manager (the API Management provider) and of the
Azure AD token endpoint, on HTTPS on 127.0.0.1 with a test CA made at test
time, for hostgate-sync's `source = azure-apim` (docs/azure-apim.md).

Why a fake: a real APIM service cannot run here (no Azure from the test
machines, loopback only). The answers are shaped as the examples Azure
publishes for api-version 2022-08-01 (azure-rest-api-specs,
specification/apimanagement/resource-manager/Microsoft.ApiManagement/stable/
2022-08-01/examples/): lists are {"value": [...], "count": N, "nextLink": URL}
with ARM entities {"id", "type", "name", "properties"}; listSecrets answers
{"primaryKey", "secondaryKey"}; listValue {"value"}; the token endpoint (v2.0,
client credentials) {"token_type": "Bearer", "expires_in", "ext_expires_in",
"access_token"}; errors are ARM's {"error": {"code", "message"}} and AAD's
{"error", "error_description", "error_codes"}.

Misbehaviour on demand: page_size (nextLink paging), throttle (answer the
next N ARM reads 429 with Retry-After), expire_tokens (every token issued so
far is refused 401 ExpiredAuthenticationToken), refuse_client (AAD answers
invalid_client), subscription_etags = False (list items without "etag").
Subscriptions listed carry "etag" (with_etag). Every request is recorded (method, path, headers, form)."""
import hashlib
import http.server
import json
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
import uuid

API_VERSION = "2022-08-01"
SUB = "00000000-0000-0000-0000-000000000000"
RG = "rg1"
SERVICE_NAME = "apimService1"
SERVICE = ("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.ApiManagement/service/%s"
           % (SUB, RG, SERVICE_NAME))
TENANT = "11111111-1111-1111-1111-111111111111"
CLIENT_ID = "22222222-2222-2222-2222-222222222222"
CLIENT_SECRET = "Zx8Q~client-secret-never-logged.4b1f"


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True)


def make_ca_and_cert(d):
    """ca.pem (the test CA the agent is told to trust), server.pem/.key for
    127.0.0.1."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=hostgate test ARM CA", cwd=d)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=d)
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                               "extendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf", cwd=d)
    return d / "ca.pem"


def gateway_api(name, path, service_url):
    """One item of gateways/{g}/apis (ApiManagementListGatewayApis.json):
    an ApiContract under the gateway's id."""
    return {
        "id": SERVICE + "/gateways/gw1/apis/" + name,
        "type": "Microsoft.ApiManagement/service/gateways/apis",
        "name": name,
        "properties": {"displayName": name, "apiRevision": "1", "description": "",
                       "serviceUrl": service_url, "path": path, "protocols": ["https"],
                       "isCurrent": True, "subscriptionRequired": True,
                       "subscriptionKeyParameterNames": {"header": "Ocp-Apim-Subscription-Key",
                                                         "query": "subscription-key"}},
    }


def operation(api, name, method, url_template):
    """One item of apis/{a}/operations (ApiManagementListApiOperations.json)."""
    return {
        "id": SERVICE + "/apis/%s/operations/%s" % (api, name),
        "type": "Microsoft.ApiManagement/service/apis/operations",
        "name": name,
        "properties": {"displayName": name, "method": method, "urlTemplate": url_template,
                       "templateParameters": [], "responses": []},
    }


def policy_answer(resource, xml):
    """A policy GET with format=rawxml (ApiManagementGetApiPolicy.json)."""
    kind = resource.rsplit("/policies/policy", 1)[0]
    typ = "Microsoft.ApiManagement/service/" + (
        "apis/operations/policies" if "/operations/" in kind else
        "apis/policies" if "/apis/" in kind else
        "products/policies" if "/products/" in kind else "policies")
    return {"id": SERVICE + resource, "type": typ, "name": "policy",
            "properties": {"format": "rawxml", "value": xml}}


def product(name, subscription_required=True):
    """One item of products (ApiManagementListProducts.json)."""
    return {"id": SERVICE + "/products/" + name,
            "type": "Microsoft.ApiManagement/service/products", "name": name,
            "properties": {"displayName": name, "description": "", "terms": "",
                           "subscriptionRequired": subscription_required,
                           "approvalRequired": False, "subscriptionsLimit": 1,
                           "state": "published"}}


def subscription(name, scope, state="active"):
    """One item of subscriptions (ApiManagementListSubscriptions.json): no
    keys in it (listSecrets gives them)."""
    return {"id": SERVICE + "/subscriptions/" + name,
            "type": "Microsoft.ApiManagement/service/subscriptions", "name": name,
            "properties": {"ownerId": SERVICE + "/users/1", "scope": SERVICE + scope,
                           "displayName": name, "state": state,
                           "createdDate": "2026-01-01T00:00:00Z", "allowTracing": False}}


def named_value(name, display, value=None, secret=False, key_vault=None):
    """One item of namedValues (ApiManagementListNamedValues.json): a secret
    or Key Vault-backed one carries no value (listValue gives it)."""
    props = {"displayName": display, "secret": secret, "tags": []}
    if value is not None and not secret and not key_vault:
        props["value"] = value
    if key_vault:
        props["keyVault"] = {"secretIdentifier": key_vault, "identityClientId": None,
                             "lastStatus": {"code": "Success",
                                            "timeStampUtc": "2026-12-01T00:00:00Z"}}
    return {"id": SERVICE + "/namedValues/" + name,
            "type": "Microsoft.ApiManagement/service/namedValues", "name": name,
            "properties": props}


class FakeArm:
    """The service's state (apis per gateway, …) is plain dicts the tests
    edit between syncs."""

    def __init__(self, d):
        self.ca = make_ca_and_cert(d)
        self.requests = []
        self.lock = threading.Lock()
        self.gateway_apis = {"gw1": []}
        self.operations = {}      # api -> [operation(...)]; absent: one GET /
        self.policies = {}        # "/apis/a/policies/policy", "/policies/policy", ... -> XML
        self.page_size = 100
        self.throttle = 0
        self.retry_after = "1"
        self.refuse_client = False
        self.expires_in = 3599
        self.tokens = {}          # token -> still valid
        self.expire_at_read = 0   # expire every token when the Nth ARM read arrives
        self.fail_paths = {}      # path (without query) -> HTTP status to answer instead
        self.products = {}        # name -> (product(...), [api names])
        self.subscriptions = {}   # name -> (subscription(...), [primaryKey, secondaryKey])
        self.subscription_etags = True
        self.named_values = {}    # name -> (named_value(...), value listValue answers)
        self.lists = {"/backends": [], "/apiVersionSets": [], "/policyFragments": []}
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                # headers and body go in two writes: without this, delayed ACKs
                # cost 40 ms per answer
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def answer(self, status, body, headers=()):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n).decode()
                form = dict(urllib.parse.parse_qsl(body))
                with fake.lock:
                    fake.requests.append({"method": "POST", "path": self.path,
                                          "headers": dict(self.headers.items()), "form": form,
                                          "body": body, "time": time.monotonic()})
                if self.path == "/%s/oauth2/v2.0/token" % TENANT:
                    return fake.token(self, form)
                return fake.arm_get(self)

            def do_GET(self):
                with fake.lock:
                    fake.requests.append({"method": "GET", "path": self.path,
                                          "headers": dict(self.headers.items()),
                                          "time": time.monotonic()})
                return fake.arm_get(self)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(d / "server.pem"), str(d / "server.key"))
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.url = "https://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    # ---- Azure AD ----------------------------------------------------------
    def token(self, h, form):
        if (self.refuse_client or form.get("client_secret") != CLIENT_SECRET or
                form.get("client_id") != CLIENT_ID):
            return h.answer(401, {"error": "invalid_client",
                                  "error_description": "AADSTS7000215: Invalid client secret "
                                  "provided.", "error_codes": [7000215]})
        if (form.get("grant_type") != "client_credentials" or
                form.get("scope") != self.url + "/.default"):
            return h.answer(400, {"error": "invalid_request",
                                  "error_description": "AADSTS90014: bad request",
                                  "error_codes": [90014]})
        tok = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9." + uuid.uuid4().hex
        with self.lock:
            self.tokens[tok] = True
        return h.answer(200, {"token_type": "Bearer", "expires_in": self.expires_in,
                              "ext_expires_in": self.expires_in, "access_token": tok})

    def expire_tokens(self):
        with self.lock:
            for t in self.tokens:
                self.tokens[t] = False

    # ---- ARM ---------------------------------------------------------------
    def arm_get(self, h):
        with self.lock:
            n = sum(1 for r in self.requests if r["method"] == "GET")
            if self.expire_at_read and n == self.expire_at_read:
                for t in self.tokens:
                    self.tokens[t] = False
        auth = h.headers.get("Authorization", "")
        tok = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
        with self.lock:
            valid = self.tokens.get(tok)
        if valid is None:
            return h.answer(401, {"error": {"code": "InvalidAuthenticationToken",
                                            "message": "The access token is invalid."}})
        if not valid:
            return h.answer(401, {"error": {"code": "ExpiredAuthenticationToken",
                                            "message": "The access token expiry UTC time "
                                            "is earlier than current UTC time."}})
        with self.lock:
            throttled = self.throttle > 0
            if throttled:
                self.throttle -= 1
        if throttled:
            return h.answer(429, {"error": {"code": "TooManyRequests",
                                            "message": "Number of 'read' requests for "
                                            "subscription actor exceeded."}},
                            headers=[("Retry-After", self.retry_after)])
        u = urllib.parse.urlsplit(h.path)
        q = dict(urllib.parse.parse_qsl(u.query))
        if u.path in self.fail_paths:
            return h.answer(self.fail_paths[u.path], {"error": {
                "code": "InternalServerError", "message": "injected by the test"}})
        if q.get("api-version") != API_VERSION:
            return h.answer(400, {"error": {"code": "InvalidApiVersionParameter",
                                            "message": "bad api-version"}})
        prefix = SERVICE + "/gateways/"
        if u.path.startswith(prefix) and u.path.endswith("/apis"):
            g = u.path[len(prefix):-len("/apis")]
            if g not in self.gateway_apis:
                return h.answer(404, {"error": {"code": "ResourceNotFound",
                                                "message": "Gateway not found."}})
            return self.page(h, u.path, q, self.gateway_apis[g])
        rest = u.path[len(SERVICE):] if u.path.startswith(SERVICE) else None
        if h.command == "POST":
            if rest and rest.startswith("/subscriptions/") and rest.endswith("/listSecrets"):
                sid = rest[len("/subscriptions/"):-len("/listSecrets")]
                if sid in self.subscriptions:
                    k = self.subscriptions[sid][1]
                    return h.answer(200, {"primaryKey": k[0], "secondaryKey": k[1]})
            if rest and rest.startswith("/namedValues/") and rest.endswith("/listValue"):
                nid = rest[len("/namedValues/"):-len("/listValue")]
                if nid in self.named_values:
                    return h.answer(200, {"value": self.named_values[nid][1]})
            return h.answer(404, {"error": {"code": "ResourceNotFound",
                                            "message": "not in the fake"}})
        if rest == "/products":
            return self.page(h, u.path, q, [p for p, _ in self.products.values()])
        if rest and rest.startswith("/products/") and rest.endswith("/apis"):
            pid = rest[len("/products/"):-len("/apis")]
            if pid in self.products:
                return self.page(h, u.path, q, [
                    dict(gateway_api(a, a, "http://127.0.0.1:9/"),
                         id=SERVICE + "/products/%s/apis/%s" % (pid, a),
                         type="Microsoft.ApiManagement/service/products/apis")
                    for a in self.products[pid][1]])
        if rest == "/namedValues":
            return self.page(h, u.path, q, [n for n, _ in self.named_values.values()])
        if rest in self.lists:
            if rest == "/policyFragments" and q.get("format") != "rawxml":
                return h.answer(400, {"error": {"code": "ValidationError",
                                                "message": "the fake serves rawxml"}})
            return self.page(h, u.path, q, self.lists[rest])
        if rest == "/subscriptions":
            return self.page(h, u.path, q, [self.with_etag(s, k)
                                            for s, k in self.subscriptions.values()])
        if rest is not None and rest.endswith("/policies/policy"):
            if q.get("format") != "rawxml":
                return h.answer(400, {"error": {"code": "ValidationError",
                                                "message": "the fake serves rawxml"}})
            if rest in self.policies:
                return h.answer(200, policy_answer(rest, self.policies[rest]))
            return h.answer(404, {"error": {"code": "ResourceNotFound",
                                            "message": "Policy configuration not found."}})
        if rest is not None and rest.startswith("/apis/") and rest.endswith("/operations"):
            a = rest[len("/apis/"):-len("/operations")]
            if any(x["name"] == a for g in self.gateway_apis.values() for x in g):
                ops = self.operations.get(a, [operation(a, "get", "GET", "/")])
                return self.page(h, u.path, q, ops)
        return h.answer(404, {"error": {"code": "ResourceNotFound",
                                        "message": "not in the fake"}})

    def with_etag(self, sub, keys):
        """The subscription with its entity tag: a hash of its properties and
        keys, so that a regenerated key (or any edit) changes it, as APIM's
        own ETag of a subscription changes when its keys are regenerated (an
        assumption: docs/azure-apim.md, "Reads"). subscription_etags = False
        answers without one."""
        if not self.subscription_etags:
            return sub
        h = hashlib.sha256(json.dumps([sub, keys], sort_keys=True).encode()).hexdigest()
        return dict(sub, etag='"%s"' % h[:16])

    def page(self, h, path, q, items):
        skip = int(q.get("$skip", "0"))
        chunk = items[skip:skip + self.page_size]
        body = {"value": chunk, "count": len(items)}
        if skip + self.page_size < len(items):
            body["nextLink"] = "%s%s?api-version=%s&$skip=%d" % (
                self.url, path, API_VERSION, skip + self.page_size)
        return h.answer(200, body)

    def reads(self):
        """ARM requests (GETs, and the POSTs listSecrets and listValue)."""
        with self.lock:
            return [r for r in self.requests if "/oauth2/" not in r["path"]]

    def token_requests(self):
        with self.lock:
            return [r for r in self.requests if r["path"].endswith("/oauth2/v2.0/token")]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def wait_listening(port, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
