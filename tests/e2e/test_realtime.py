"""`POST /realtime_session` over HTTP against gunicorn, with a real local HTTP server as the provider.

The provider stand-in is `http.server` in a thread on a free port; it records every request it gets
(path, headers, JSON body), so the tests check what the gateway sent and that the key went nowhere else.
"""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from clients import legacy
from conftest import Deployment
from gateway_server import free_port
from http_stub import serving

PROVIDER_KEY = "sk-test-provider-key-123"
SESSION = {"id": "sess_001", "object": "realtime.session", "model": "gpt-4o-realtime-preview",
           "client_secret": {"value": "ek_abc123", "expires_at": 1900000000}}
DEFAULT_REQUEST = {"model": "gpt-4o-realtime-preview", "voice": "verse", "modalities": ["audio", "text"]}

# path -> (status, content type, body)
ROUTES = {
    "/v1/realtime/sessions": (200, "application/json", json.dumps(SESSION).encode()),
    "/alt/sessions": (200, "application/json", json.dumps({"id": "alt", "client_secret": {"value": "ek_alt"}}).encode()),
    "/unauthorized": (401, "application/json", b'{"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}}'),
    "/ratelimited": (429, "text/plain; charset=utf-8", b"slow down"),
    "/broken": (500, "application/json", b'{"error": "provider exploded"}'),
    "/notjson": (200, "text/html", b"<html>hello</html>"),
    "/redirect": (302, "text/plain", b""),
    "/redirect-target": (200, "application/json", json.dumps(SESSION).encode()),
}


class Provider:
    """A local stand-in for the realtime provider."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                provider.requests.append({"path": self.path, "headers": dict(self.headers),
                                          "body": json.loads(raw) if raw else None})
                if self.path == "/slow":
                    time.sleep(3)  # longer than the gateway's REALTIME_TIMEOUT_SECONDS
                status, content_type, body = ROUTES.get(self.path, (404, "text/plain", b"no route"))
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                if self.path == "/redirect":
                    self.send_header("Location", provider.url("/redirect-target"))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def paths(self) -> list[str]:
        return [r["path"] for r in self.requests]


@pytest.fixture(scope="module")
def provider():
    stub = Provider()
    with serving(stub.server):
        yield stub


@pytest.fixture(scope="module")
def unreachable() -> str:
    return f"http://127.0.0.1:{free_port()}/v1/realtime/sessions"  # nothing listens there


@pytest.fixture(scope="module")
def enabled(stack, provider, unreachable):
    """A gateway with realtime enabled, the stub as its endpoint and the stub's other paths allowed."""
    allowed = [provider.url(p) for p in ("/alt/sessions", "/unauthorized", "/ratelimited", "/broken",
                                         "/notjson", "/redirect", "/slow")] + [unreachable]
    deployment = Deployment(stack, {
        "REALTIME_ENABLED": "true", "REALTIME_API_KEY": PROVIDER_KEY,
        "REALTIME_ENDPOINT": provider.url("/v1/realtime/sessions"),
        "REALTIME_ENDPOINT_ALLOWLIST": ",".join(allowed), "REALTIME_TIMEOUT_SECONDS": "1"})
    try:
        yield deployment.start_gateway()
    finally:
        deployment.stop()


@pytest.fixture(autouse=True)
def fresh_provider_log(provider):
    provider.requests.clear()


def test_success_hands_back_the_provider_session_verbatim(enabled, provider):
    response = legacy(enabled.url, "/realtime_session", {})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"enabled": True, "session": SESSION}
    assert list(response.json()) == ["enabled", "session"]
    assert response.json()["session"]["client_secret"]["value"] == "ek_abc123"
    [sent] = provider.requests
    assert sent["path"] == "/v1/realtime/sessions"
    assert sent["headers"]["Authorization"] == f"Bearer {PROVIDER_KEY}"
    assert sent["headers"]["Content-Type"] == "application/json"
    assert sent["body"] == DEFAULT_REQUEST


def test_callers_model_voice_and_modalities_are_forwarded(enabled, provider):
    body = {"model": "gpt-realtime-mini", "voice": "alloy", "modalities": ["text"]}
    response = legacy(enabled.url, "/api/realtime_session", body)
    assert response.json() == {"enabled": True, "session": SESSION}
    assert provider.requests[0]["body"] == body


def test_fields_of_the_wrong_type_fall_back_to_the_defaults(enabled, provider):
    response = legacy(enabled.url, "/realtime_session", {"model": 5, "voice": "", "modalities": "audio"})
    assert response.status_code == 200
    assert provider.requests[0]["body"] == DEFAULT_REQUEST


def test_allowed_caller_endpoint_is_used(enabled, provider):
    for endpoint in (provider.url("/alt/sessions"), provider.url("/v1/realtime/sessions")):
        response = legacy(enabled.url, "/realtime_session", {"endpoint": endpoint})
        assert response.status_code == 200
    assert provider.paths() == ["/alt/sessions", "/v1/realtime/sessions"]
    assert response.json()["enabled"] is True


@pytest.mark.parametrize("endpoint_path", ["/evil", None])
def test_endpoint_not_on_the_allow_list_is_400_and_gets_no_key(enabled, provider, endpoint_path):
    endpoint = provider.url(endpoint_path) if endpoint_path else "https://attacker.example/steal"
    response = legacy(enabled.url, "/realtime_session", {"endpoint": endpoint})
    assert (response.status_code, response.json()) == (400, {"error": "endpoint not allowed"})
    assert provider.requests == []


@pytest.mark.parametrize("endpoint", [5, ["x"], {"url": "x"}, True])
def test_endpoint_of_the_wrong_type_is_not_allowed(enabled, endpoint):
    response = legacy(enabled.url, "/realtime_session", {"endpoint": endpoint})
    assert (response.status_code, response.json()) == (400, {"error": "endpoint not allowed"})


@pytest.mark.parametrize("path", ["/unauthorized", "/ratelimited", "/broken"])
def test_provider_error_passes_through_with_its_status_and_body(enabled, provider, path):
    status, content_type, body = ROUTES[path]
    response = legacy(enabled.url, "/realtime_session", {"endpoint": provider.url(path)})
    assert (response.status_code, response.content) == (status, body)
    assert response.headers["Content-Type"] == content_type


@pytest.mark.parametrize("case", ["unreachable", "/slow", "/notjson", "/redirect"])
def test_unreachable_or_unusable_provider_is_502(enabled, provider, unreachable, case):
    endpoint = unreachable if case == "unreachable" else provider.url(case)
    response = legacy(enabled.url, "/realtime_session", {"endpoint": endpoint})
    assert (response.status_code, response.json()) == (502, {"error": "Realtime provider unavailable"})
    # A redirect is not followed: the key never reaches the redirect's target.
    assert "/redirect-target" not in provider.paths()


def test_disabled_is_200_with_enabled_false(gateway):
    for path in ("/realtime_session", "/api/realtime_session"):
        response = legacy(gateway.url, path, {})
        assert response.status_code == 200
        assert response.text == '{"error": "Realtime speech is not enabled in settings.", "enabled": false}'


def test_enabled_without_a_key_is_400_text(start_gateway):
    server = start_gateway({"REALTIME_ENABLED": "true", "REALTIME_API_KEY": ""})
    response = legacy(server.url, "/realtime_session", {})
    assert (response.status_code, response.text) == (400, "OpenAI API key is not configured.")
    assert response.headers["Content-Type"].startswith("text/plain")


def test_openai_api_key_is_the_alias_of_the_provider_key(start_gateway, provider):
    server = start_gateway({"REALTIME_ENABLED": "true", "OPENAI_API_KEY": "sk-from-alias",
                            "REALTIME_ENDPOINT": provider.url("/v1/realtime/sessions")})
    response = legacy(server.url, "/realtime_session", {})
    assert response.json() == {"enabled": True, "session": SESSION}
    assert provider.requests[0]["headers"]["Authorization"] == "Bearer sk-from-alias"


def test_auth_methods_and_no_key_in_the_logs(enabled):
    response = requests.post(f"{enabled.url}/realtime_session", json={}, timeout=10)
    assert (response.status_code, response.text) == (401, "API key required")
    response = legacy(enabled.url, "/realtime_session", {}, key="wrong")
    assert (response.status_code, response.text) == (401, "Invalid API key")
    for path in ("/realtime_session", "/api/realtime_session"):
        response = requests.get(f"{enabled.url}{path}", timeout=10)
        assert (response.status_code, response.json()) == (405, {"error": "Method Not Allowed"})
    assert PROVIDER_KEY not in enabled.output()
