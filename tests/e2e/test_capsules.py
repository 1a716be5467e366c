"""`/v1/capsules`: the proxy to the capsule registry, against a real HTTP server standing in for it."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from conftest import Deployment
from gateway_server import free_port
from http_stub import serving

CAPSULES = [{"id": "weather-1.0", "name": "Weather"}, {"id": "shell", "name": "Shell"}]
BLOB = bytes(range(256)) * 4096  # 1 MiB that is not text
SLOW_SECONDS = 4.0
TIMEOUT_SECONDS = 1.0


class Registry(ThreadingHTTPServer):
    """A capsule registry: records each request's method and raw path and answers by capsule id."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), RegistryHandler)
        self.requests: list[tuple[str, str]] = []
        self.release = threading.Event()  # lets the "streamed" capsule send its second half
        self.released_in_time = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class RegistryHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Registry

    def log_message(self, *args) -> None:
        pass

    def answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.server.requests.append(("GET", self.path))
        if self.path == "/capsules":
            self.answer(200, json.dumps(CAPSULES).encode(), {"Content-Type": "application/json"})
        elif self.path == "/capsules/weather-1.0":
            self.answer(200, BLOB, {"Content-Type": "application/zip",
                                    "Content-Disposition": 'attachment; filename="weather-1.0.zip"'})
        elif self.path == "/capsules/untyped":
            self.answer(200, b"raw bytes", {})
        elif self.path == "/capsules/streamed":
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"first half;", None, b"second half"):
                if part is None:
                    # The second half waits until the client has the first: only a streaming proxy gets here.
                    self.server.released_in_time = self.server.release.wait(10)
                    continue
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/capsules/slow":
            time.sleep(SLOW_SECONDS)  # the stand-in registry is slow on purpose
            self.answer(200, b"late", {})
        else:
            self.answer(404, b"capsule missing", {"Content-Type": "text/plain"})

    def do_POST(self) -> None:
        self.server.requests.append(("POST", self.path))
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        if self.path == "/capsules/weather-1.0/install":
            self.answer(200, json.dumps({"installed": "weather-1.0"}).encode(), {"Content-Type": "application/json"})
        elif self.path == "/capsules/broken/install":
            self.answer(500, b'{"error": "disk full"}', {"Content-Type": "application/json"})
        elif self.path == "/capsules/quiet/install":
            self.answer(204, b"", {})
        elif self.path == "/capsules/garbled/install":
            self.answer(200, b"<html>not json</html>", {"Content-Type": "text/html"})
        else:
            self.answer(409, b"already installed", {"Content-Type": "text/plain"})


@pytest.fixture(scope="module")
def registry():
    with serving(Registry()) as server:
        yield server


@pytest.fixture(scope="module")
def proxy(stack, registry):
    """A gateway of this test's mode whose capsule registry is the stand-in, with a short timeout."""
    deployment = Deployment(stack, {"CAPSULE_REGISTRY_URL": registry.url + "/",
                                    "CAPSULE_REGISTRY_TIMEOUT_SECONDS": str(TIMEOUT_SECONDS)})
    try:
        yield deployment.start_gateway()
    finally:
        deployment.stop()


@pytest.fixture
def seen(registry):
    """What the registry receives during one test."""
    registry.requests.clear()
    return registry.requests


def get(server, path, **kwargs):
    return requests.get(f"{server.url}{path}", timeout=30, **kwargs)


def post(server, path, **kwargs):
    return requests.post(f"{server.url}{path}", timeout=30, **kwargs)


@pytest.mark.parametrize("prefix", ["/v1", ""])
def test_list_is_the_registry_json(proxy, seen, prefix):
    response = get(proxy, f"{prefix}/capsules")
    assert (response.status_code, response.json()) == (200, CAPSULES)
    assert response.headers["X-API-Version"] == "v1"
    assert seen == [("GET", "/capsules")]


@pytest.mark.parametrize("prefix", ["/v1", ""])
def test_download_passes_bytes_and_headers_through(proxy, seen, prefix):
    response = get(proxy, f"{prefix}/capsules/weather-1.0")
    assert response.status_code == 200
    assert response.content == BLOB
    assert response.headers["Content-Type"] == "application/zip"
    assert response.headers["Content-Disposition"] == 'attachment; filename="weather-1.0.zip"'
    assert seen == [("GET", "/capsules/weather-1.0")]


def test_download_without_a_type_is_octet_stream(proxy):
    response = get(proxy, "/v1/capsules/untyped")
    assert (response.status_code, response.content) == (200, b"raw bytes")
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert "Content-Disposition" not in response.headers


def test_download_is_streamed_not_buffered(proxy, registry):
    registry.release.clear()
    with requests.get(f"{proxy.url}/v1/capsules/streamed", stream=True, timeout=30) as response:
        assert response.status_code == 200
        received = b""
        chunks = response.iter_content(chunk_size=None)
        while len(received) < len(b"first half;"):
            received += next(chunks)
        registry.release.set()  # the client has the first half while the registry still holds the second
        received += b"".join(chunks)
    assert received == b"first half;second half"
    assert registry.released_in_time


@pytest.mark.parametrize("prefix", ["/v1", ""])
def test_install_posts_to_the_registry(proxy, seen, prefix):
    response = post(proxy, f"{prefix}/capsules/weather-1.0/install")
    assert (response.status_code, response.json()) == (200, {"installed": "weather-1.0"})
    assert seen == [("POST", "/capsules/weather-1.0/install")]


def test_install_without_an_answer_body_is_null(proxy):
    response = post(proxy, "/v1/capsules/quiet/install")
    assert (response.status_code, response.json()) == (200, None)


@pytest.mark.parametrize("method, path, status, detail", [
    ("GET", "/v1/capsules/unknown", 404, "capsule missing"),
    ("POST", "/v1/capsules/broken/install", 500, '{"error": "disk full"}'),
    ("POST", "/v1/capsules/other/install", 409, "already installed"),
])
def test_registry_errors_keep_their_status_and_text(proxy, method, path, status, detail):
    response = requests.request(method, f"{proxy.url}{path}", timeout=30)
    assert (response.status_code, response.json()) == (status, {"detail": detail})


def test_registry_answer_that_is_not_json_is_502(proxy):
    response = post(proxy, "/v1/capsules/garbled/install")
    assert (response.status_code, response.json()) == (502, {"detail": "Capsule registry unavailable"})


def test_slow_registry_times_out_as_502(proxy):
    started = time.monotonic()
    response = get(proxy, "/v1/capsules/slow")
    assert (response.status_code, response.json()) == (502, {"detail": "Capsule registry unavailable"})
    assert time.monotonic() - started < SLOW_SECONDS


@pytest.mark.parametrize("path", [
    "/v1/capsules/..", "/v1/capsules/%2E%2E", "/v1/capsules/.", "/v1/capsules/a..b",
    "/v1/capsules/..%2Fadmin", "/v1/capsules/%2e%2e/install", "/v1/capsules/a%3Fb", "/v1/capsules/a%23b",
    "/v1/capsules/a%25b", "/v1/capsules/a%5Cb", "/v1/capsules/a%20b", "/v1/capsules/.hidden",
    "/capsules/..", "/v1/capsules/a%2Fb", "/v1/capsules/a/b", "/v1/capsules/a%2F..%2F..%2Fsecret",
])
def test_unsafe_capsule_ids_never_reach_the_registry(proxy, seen, path):
    method = "POST" if path.endswith("/install") else "GET"
    # Sent byte for byte: a client library would normalise the dot-segments away.
    session = requests.Session()
    prepared = requests.Request(method, f"{proxy.url}/placeholder").prepare()
    prepared.url = f"{proxy.url}{path}"
    response = session.send(prepared, timeout=30)
    # A "/" in the id (encoded or not) matches no route; any other unsafe id is refused as invalid.
    if "/" in path.split("/capsules/", 1)[1].replace("%2F", "/").removesuffix("/install"):
        assert (response.status_code, response.json()) == (404, {"detail": "Not Found"})
    else:
        assert (response.status_code, response.json()) == (400, {"detail": "Invalid capsule id"})
    assert seen == []


def test_unreachable_registry_is_502(deploy):
    server = deploy({"CAPSULE_REGISTRY_URL": f"http://127.0.0.1:{free_port()}"}).start_gateway()
    for method, path in (("GET", "/v1/capsules"), ("GET", "/v1/capsules/x"), ("POST", "/v1/capsules/x/install")):
        response = requests.request(method, f"{server.url}{path}", timeout=30)
        assert (response.status_code, response.json()) == (502, {"detail": "Capsule registry unavailable"}), path
