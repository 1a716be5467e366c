"""Model profiles, route, requeue and capsules in-process: admin scope, store outages, capsule ids."""

from __future__ import annotations

import time

import jwt
import pytest

from gateway.app import create_app
from gateway.capsules import InvalidCapsuleId, check_capsule_id
from gateway.profiles import ProfilesUnavailable
from gateway_server import free_port

SECRET = "unit-test-secret-long-enough-for-hs256-signing"


def bearer(*scopes: str) -> dict[str, str]:
    claims = {"sub": "op", "exp": time.time() + 300, "scope": " ".join(scopes)}
    return {"Authorization": f"Bearer {jwt.encode(claims, SECRET, algorithm='HS256')}"}


@pytest.fixture
def app():
    app = create_app({"RUN_WORKER_IN_PROCESS": "false", "GATEWAY_JWT_SECRET": SECRET,
                      "CAPSULE_REGISTRY_URL": f"http://127.0.0.1:{free_port()}"})
    yield app
    app.extensions["gateway"].stop()


PROFILE = {"role": "dialogue", "deployment_mode": "prod", "model": "m"}
ADMIN_CALLS = [
    ("POST", "/v1/model-profiles", PROFILE),
    ("PUT", "/v1/model-profiles/dialogue/prod", PROFILE),
    ("DELETE", "/v1/model-profiles/dialogue/prod", None),
    ("POST", "/v1/requeue/r-1/resolve", None),
    ("DELETE", "/v1/requeue/r-1", None),
    ("POST", "/v1/capsules/c-1/install", None),
    ("POST", "/capsules/c-1/install", None),
]


@pytest.mark.parametrize("method, path, body", ADMIN_CALLS)
def test_admin_routes_need_the_admin_scope(app, method, path, body):
    client = app.test_client()
    missing = client.open(path, method=method, json=body)
    assert (missing.status_code, missing.get_json()) == (401, {"detail": "Missing Authorization header"})
    forbidden = client.open(path, method=method, json=body, headers=bearer("read"))
    assert (forbidden.status_code, forbidden.get_json()) == (403, {"detail": "Admin scope required"})


def test_admin_scope_opens_the_admin_routes(app):
    client = app.test_client()
    for scope in ("admin", "keys:manage"):
        assert client.post("/v1/model-profiles", json=PROFILE, headers=bearer(scope)).status_code == 201
    assert client.delete("/v1/model-profiles/dialogue/prod", headers=bearer("admin")).status_code == 200
    resolve = client.post("/v1/requeue/r-1/resolve", headers=bearer("admin"))
    assert (resolve.status_code, resolve.get_json()) == (404, {"detail": "requeue item not found"})
    install = client.post("/v1/capsules/c-1/install", headers=bearer("admin"))
    assert (install.status_code, install.get_json()) == (502, {"detail": "Capsule registry unavailable"})


def test_read_routes_need_a_token_but_no_admin_scope(app):
    client = app.test_client()
    assert client.get("/v1/model-profiles").status_code == 401
    assert client.get("/capsules").status_code == 401
    assert client.get("/v1/model-profiles", headers=bearer()).get_json() == []
    assert client.get("/v1/requeue", headers=bearer()).get_json() == []
    route = client.post("/v1/route", json={"candidates": ["a"]}, headers=bearer())
    assert route.get_json() == {"chosen": "a", "score": None}
    assert client.get("/v1/capsules", headers=bearer()).status_code == 502


def test_profile_store_outage_is_503(app):
    class DownProfiles:
        kind = "down"

        def __getattr__(self, name):
            def fail(*args, **kwargs):
                raise ProfilesUnavailable("connection refused")
            return fail

    app.extensions["gateway"].profiles = DownProfiles()
    client = app.test_client()
    for response in (client.get("/v1/model-profiles", headers=bearer()),
                     client.post("/v1/model-profiles", json=PROFILE, headers=bearer("admin")),
                     client.post("/v1/route", json={"candidates": ["a"]}, headers=bearer())):
        assert (response.status_code, response.get_json()) == (503, {"detail": "Model profile store unavailable"})


@pytest.mark.parametrize("capsule_id", ["weather", "weather-1.0.2", "a_b", "A~1", "1.0+build", "x" * 200])
def test_plain_capsule_ids_are_accepted(capsule_id):
    assert check_capsule_id(capsule_id) == capsule_id


@pytest.mark.parametrize("capsule_id", [
    "", ".", "..", ".hidden", "a..b", "a/b", "a\\b", "a%2Fb", "%2e%2e", "a?b", "a#b", "a b", "ü", "a\x00",
    "x" * 201, "a;b", "a\n",
])
def test_unsafe_capsule_ids_are_refused(capsule_id):
    with pytest.raises(InvalidCapsuleId):
        check_capsule_id(capsule_id)
