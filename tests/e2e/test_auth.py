"""/v1 authentication over HTTP: HS256 tokens, RS256 through a JWKS server, API keys, streams, auth off.

Gateways are grouped by settings (one per module-scoped fixture) so the suite starts few of them.
"""

from __future__ import annotations

import json
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
import requests
import websocket
from cryptography.hazmat.primitives.asymmetric import rsa

from clients import sse, until_final
from conftest import Deployment
from gateway_server import free_port
from http_stub import serving

SECRET = "test-jwt-secret-long-enough-for-every-hmac-algorithm-even-hs512-0123456789"
AUDIENCE = "soma-gateway"
ISSUER = "https://issuer.test"
JWKS_ISSUER = "https://jwks-issuer.test"
UNAUTHORIZED = {"Missing": "Missing Authorization header", "Header": "Invalid Authorization header",
                "Token": "Invalid token"}


def hs_token(secret: str = SECRET, **claims) -> str:
    payload = {"sub": "user-1", "aud": AUDIENCE, "iss": ISSUER, "exp": time.time() + 300, **claims}
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, secret, algorithm="HS256")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def post_message(server, headers=None, **body):
    return requests.post(f"{server.url}/v1/session/message", json={"message": "hi", **body},
                         headers=headers or {}, timeout=30)


def reply_metadata(server, headers, token, **body) -> dict:
    """Send a message and return the metadata of its reply, read from the session's stream.

    The stream is opened first (and asked for the history too), so the reply is seen whether it
    arrives live or is already stored.
    """
    session_id = uuid.uuid4().hex
    with sse(server.url, session_id, params={"from": "start", "access_token": token}) as events:
        sent = post_message(server, headers, session_id=session_id, **body)
        assert sent.status_code == 200, sent.text
        return until_final(events)[-1].data["metadata"]


def assert_401(response, detail):
    assert response.status_code == 401
    assert response.json() == {"detail": detail}
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.fixture(scope="module")
def hs_gateway(stack):
    """Tokens required: HS256 secret with audience and issuer; a JWKS URL where nothing listens."""
    deployment = Deployment(stack, {
        "GATEWAY_JWT_SECRET": SECRET, "GATEWAY_JWT_AUDIENCE": AUDIENCE, "GATEWAY_JWT_ISSUER": ISSUER,
        "GATEWAY_JWKS_URL": f"http://127.0.0.1:{free_port()}/jwks.json", "GATEWAY_JWT_LEEWAY": "10"})
    try:
        yield deployment.start_gateway()
    finally:
        deployment.stop()


# -- HS256


def test_protected_routes_need_a_token_and_health_stays_open(hs_gateway):
    assert_401(post_message(hs_gateway), UNAUTHORIZED["Missing"])
    assert_401(requests.post(f"{hs_gateway.url}/v1/session/action", json={"action": "summarize"}, timeout=10),
               UNAUTHORIZED["Missing"])
    assert_401(requests.get(f"{hs_gateway.url}/v1/keys", timeout=10), UNAUTHORIZED["Missing"])
    for path in ("/v1/health", "/health"):
        assert requests.get(f"{hs_gateway.url}{path}", timeout=10).status_code == 200


def test_cors_preflight_needs_no_token(hs_gateway):
    response = requests.options(f"{hs_gateway.url}/v1/session/message", timeout=10, headers={
        "Origin": "http://ui.test", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization"})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_a_valid_token_is_accepted(hs_gateway):
    response = post_message(hs_gateway, bearer(hs_token()))
    assert response.status_code == 200, response.text
    assert list(response.json()) == ["session_id", "event_id"]


@pytest.mark.parametrize("authorization, detail", [
    ("Basic dXNlcjpwYXNz", UNAUTHORIZED["Header"]),
    ("Bearer", UNAUTHORIZED["Header"]),
    ("Token abc.def.ghi", UNAUTHORIZED["Header"]),
    ("Bearer not-a-jwt", UNAUTHORIZED["Token"]),
])
def test_malformed_authorization_headers(hs_gateway, authorization, detail):
    assert_401(post_message(hs_gateway, {"Authorization": authorization}), detail)


@pytest.mark.parametrize("token", [
    pytest.param(lambda: hs_token(secret="another-secret-another-secret-another!"), id="bad-signature"),
    pytest.param(lambda: hs_token(exp=time.time() - 60), id="expired"),
    pytest.param(lambda: hs_token(aud="someone-else"), id="wrong-audience"),
    pytest.param(lambda: hs_token(aud=None), id="no-audience"),
    pytest.param(lambda: hs_token(iss="https://evil.test"), id="wrong-issuer"),
    pytest.param(lambda: hs_token(iss=None), id="no-issuer"),
    pytest.param(lambda: jwt.encode({"sub": "x", "aud": AUDIENCE, "iss": ISSUER}, None, algorithm="none"),
                 id="alg-none"),
    pytest.param(lambda: jwt.encode({"sub": "x", "aud": AUDIENCE, "iss": ISSUER}, SECRET, algorithm="HS512"),
                 id="algorithm-not-accepted"),
])
def test_bad_tokens_are_invalid(hs_gateway, token):
    assert_401(post_message(hs_gateway, bearer(token())), UNAUTHORIZED["Token"])


def test_clock_skew_within_the_leeway_is_accepted(hs_gateway):
    assert post_message(hs_gateway, bearer(hs_token(exp=time.time() - 3))).status_code == 200


def test_rs256_token_fails_when_the_jwks_is_unreachable(hs_gateway):
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode({"sub": "x", "aud": AUDIENCE, "iss": ISSUER}, private_key, algorithm="RS256",
                       headers={"kid": "k1"})
    assert_401(post_message(hs_gateway, bearer(token)), UNAUTHORIZED["Token"])


def test_admin_routes_need_the_admin_scope(hs_gateway):
    forbidden = requests.get(f"{hs_gateway.url}/v1/keys", headers=bearer(hs_token(scope="read write")), timeout=10)
    assert forbidden.status_code == 403
    assert forbidden.json() == {"detail": "Admin scope required"}
    assert requests.post(f"{hs_gateway.url}/v1/keys", json={"label": "x"}, headers=bearer(hs_token()),
                         timeout=10).status_code == 403
    assert requests.delete(f"{hs_gateway.url}/v1/keys/{uuid.uuid4().hex}", headers=bearer(hs_token()),
                           timeout=10).status_code == 403
    for claims in ({"scope": "read keys:manage"}, {"scp": ["read", "admin"]}):
        response = requests.get(f"{hs_gateway.url}/v1/keys", headers=bearer(hs_token(**claims)), timeout=10)
        assert response.status_code == 200, claims


def test_token_claims_reach_event_metadata_without_overriding_the_client(hs_gateway):
    token = hs_token(sub="user-42", tenant=["acme", "other"], scp=["read", "write"])
    metadata = reply_metadata(hs_gateway, bearer(token), token, metadata={"subject": "client-said"})
    assert metadata["tenant"] == "acme"
    assert metadata["issuer"] == ISSUER
    assert metadata["scope"] == "read write"
    assert metadata["subject"] == "client-said"


def test_sse_takes_the_token_from_the_query_string(hs_gateway):
    session_id = uuid.uuid4().hex
    url = f"{hs_gateway.url}/v1/session/{session_id}/events"
    assert_401(requests.get(url, timeout=10), UNAUTHORIZED["Missing"])
    assert_401(requests.get(url, params={"access_token": hs_token(exp=time.time() - 60)}, timeout=10),
               UNAUTHORIZED["Token"])
    token = hs_token()
    with sse(hs_gateway.url, session_id, params={"from": "start", "access_token": token}) as events:
        assert post_message(hs_gateway, bearer(token), session_id=session_id).status_code == 200
        assert until_final(events)[-1].data["message"] == "Echo: hi"


def test_access_token_is_not_accepted_outside_the_streams(hs_gateway):
    response = requests.post(f"{hs_gateway.url}/v1/session/message", params={"access_token": hs_token()},
                             json={"message": "hi"}, timeout=10)
    assert_401(response, UNAUTHORIZED["Missing"])


def test_websocket_needs_a_token_and_takes_it_from_the_query_string(hs_gateway):
    session_id = uuid.uuid4().hex
    url = f"{hs_gateway.ws_url}/v1/session/{session_id}/stream"
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(url, timeout=10)
    assert refused.value.status_code == 401
    token = hs_token()
    ws = websocket.create_connection(f"{url}?from=start&access_token={token}", timeout=10)
    try:
        assert post_message(hs_gateway, bearer(token), session_id=session_id).status_code == 200
        while True:
            event = json.loads(ws.recv())
            if event["metadata"].get("status") == "completed":
                break
        assert event["message"] == "Echo: hi"
    finally:
        ws.close()


def test_api_keys_authenticate_as_bearer_and_x_api_key_until_revoked(hs_gateway):
    admin = bearer(hs_token(sub="admin-1", scope="admin"))
    created = requests.post(f"{hs_gateway.url}/v1/keys", json={"label": "ci"}, headers=admin, timeout=30)
    assert created.status_code == 200, created.text
    key = created.json()
    assert key["created_by"] == "admin-1"
    secret = key["secret"]

    assert post_message(hs_gateway, bearer(secret)).status_code == 200
    assert post_message(hs_gateway, {"X-API-Key": secret}).status_code == 200
    # A key made without scopes is not an admin.
    assert requests.get(f"{hs_gateway.url}/v1/keys", headers=bearer(secret), timeout=10).status_code == 403
    assert_401(post_message(hs_gateway, bearer(secret[:-4] + "AAAA")), UNAUTHORIZED["Token"])
    assert_401(post_message(hs_gateway, {"X-API-Key": "not-an-sk-key"}), UNAUTHORIZED["Token"])

    assert requests.delete(f"{hs_gateway.url}/v1/keys/{key['key_id']}", headers=admin, timeout=10).status_code == 204
    assert_401(post_message(hs_gateway, bearer(secret)), UNAUTHORIZED["Token"])
    assert_401(post_message(hs_gateway, {"X-API-Key": secret}), UNAUTHORIZED["Token"])


def test_a_key_created_with_scopes_carries_them(hs_gateway):
    admin = bearer(hs_token(scope="admin"))
    created = requests.post(f"{hs_gateway.url}/v1/keys", json={"label": "ops", "scopes": ["keys:manage"]},
                            headers=admin, timeout=30).json()
    assert created["scopes"] == ["keys:manage"]
    listed = requests.get(f"{hs_gateway.url}/v1/keys", headers={"X-API-Key": created["secret"]}, timeout=10)
    assert listed.status_code == 200
    assert created["key_id"] in [k["key_id"] for k in listed.json()]
    # An API key's principal reaches event metadata too.
    metadata = reply_metadata(hs_gateway, bearer(created["secret"]), created["secret"])
    assert metadata["subject"] == f"api_key:{created['key_id']}"
    assert metadata["scope"] == "keys:manage"
    assert "tenant" not in metadata


# -- RS256 through JWKS


class JwksServer:
    """A tiny JWKS endpoint on a free port, serving the public half of the keys it signs with."""

    def __init__(self) -> None:
        self.keys = {"key-1": rsa.generate_private_key(public_exponent=65537, key_size=2048)}
        jwks = {"keys": [{**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(k.public_key())),
                          "kid": kid, "use": "sig", "alg": "RS256"} for kid, k in self.keys.items()]}
        body = json.dumps(jwks).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"

    def token(self, kid: str = "key-1", private_key=None, **claims) -> str:
        payload = {"sub": "rs-user", "iss": JWKS_ISSUER, "exp": time.time() + 300, **claims}
        return jwt.encode(payload, private_key or self.keys["key-1"], algorithm="RS256", headers={"kid": kid})


@pytest.fixture(scope="module")
def jwks():
    stub = JwksServer()
    with serving(stub.server):
        yield stub


@pytest.fixture(scope="module")
def jwks_gateway(stack, jwks):
    deployment = Deployment(stack, {
        "GATEWAY_JWKS_URL": jwks.url, "GATEWAY_JWKS_CACHE_SECONDS": "60", "GATEWAY_JWT_ALGORITHMS": "RS256",
        "GATEWAY_JWT_ISSUER": JWKS_ISSUER, "GATEWAY_JWT_TENANT_CLAIMS": "org_id,tenant"})
    try:
        yield deployment.start_gateway()
    finally:
        deployment.stop()


def test_rs256_token_from_the_jwks_is_accepted_and_names_the_caller(jwks_gateway, jwks):
    token = jwks.token(org_id="org-9", tenant="not-first", scope="admin")
    metadata = reply_metadata(jwks_gateway, bearer(token), token)
    assert {k: metadata[k] for k in ("tenant", "subject", "issuer", "scope")} == {
        "tenant": "org-9", "subject": "rs-user", "issuer": JWKS_ISSUER, "scope": "admin"}
    assert requests.get(f"{jwks_gateway.url}/v1/keys", headers=bearer(token), timeout=10).status_code == 200


@pytest.mark.parametrize("make", [
    pytest.param(lambda j: j.token(kid="unknown-kid"), id="unknown-kid"),
    pytest.param(lambda j: j.token(private_key=rsa.generate_private_key(public_exponent=65537, key_size=2048)),
                 id="signed-by-another-key"),
    pytest.param(lambda j: j.token(iss="https://elsewhere.test"), id="wrong-issuer"),
    pytest.param(lambda j: j.token(exp=time.time() - 60), id="expired"),
    pytest.param(lambda j: hs_token(iss=JWKS_ISSUER), id="hs256-not-accepted"),
])
def test_bad_rs256_tokens_are_invalid(jwks_gateway, jwks, make):
    assert_401(post_message(jwks_gateway, bearer(make(jwks))), UNAUTHORIZED["Token"])


# -- auth off (the shared gateway: no verifier, GATEWAY_REQUIRE_AUTH false)


def test_with_auth_off_requests_pass_without_credentials_and_unverifiable_ones_are_ignored(gateway):
    assert post_message(gateway).status_code == 200
    assert post_message(gateway, bearer(hs_token())).status_code == 200
    assert post_message(gateway, {"Authorization": "Basic dXNlcjpwYXNz"}).status_code == 200
    # Admin routes stay open too.
    assert requests.get(f"{gateway.url}/v1/keys", timeout=10).status_code == 200


def test_with_auth_off_a_sent_api_key_is_still_checked(gateway):
    created = requests.post(f"{gateway.url}/v1/keys", json={"label": "off"}, timeout=30).json()
    assert post_message(gateway, bearer(created["secret"])).status_code == 200
    assert requests.delete(f"{gateway.url}/v1/keys/{created['key_id']}", timeout=10).status_code == 204
    assert_401(post_message(gateway, bearer(created["secret"])), UNAUTHORIZED["Token"])
    assert_401(post_message(gateway, {"X-API-Key": created["secret"]}), UNAUTHORIZED["Token"])
