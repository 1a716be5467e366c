"""`/v1/keys` over HTTP (auth off, so the routes are open), and /v1 keys on the legacy surface."""

from __future__ import annotations

import re
import time
import uuid

import pytest
import requests

from clients import legacy
from conftest import Deployment, Stack


def create_key(server, label="client", **fields) -> requests.Response:
    return requests.post(f"{server.url}/v1/keys", json={"label": label, **fields}, timeout=30)


def list_keys(server) -> list[dict]:
    response = requests.get(f"{server.url}/v1/keys", timeout=10)
    assert response.status_code == 200
    return response.json()


def test_create_answers_the_key_and_its_secret_once(gateway):
    before = time.time()
    response = create_key(gateway, "billing bot")
    assert response.status_code == 200
    key = response.json()
    assert list(key) == ["key_id", "label", "created_at", "created_by", "prefix", "last_used_at", "revoked",
                         "scopes", "secret"]
    assert re.fullmatch(r"[0-9a-f]{32}", key["key_id"]) and uuid.UUID(key["key_id"]).version == 4
    assert key["secret"].startswith(f"sk_{key['key_id']}_")
    assert re.fullmatch(r"[A-Za-z0-9_-]+", key["secret"].split("_", 2)[2])
    assert key["prefix"] == key["secret"][:12]
    assert before <= key["created_at"] <= time.time()
    assert (key["label"], key["created_by"], key["last_used_at"], key["revoked"], key["scopes"]) == (
        "billing bot", None, None, False, [])

    listed = {k["key_id"]: k for k in list_keys(gateway)}
    assert listed[key["key_id"]] == {k: v for k, v in key.items() if k != "secret"}


def test_revoke_is_soft_and_listed_keys_include_revoked_ones(gateway):
    key = create_key(gateway).json()
    response = requests.delete(f"{gateway.url}/v1/keys/{key['key_id']}", timeout=10)
    assert response.status_code == 204
    assert response.content == b""
    listed = {k["key_id"]: k for k in list_keys(gateway)}
    assert listed[key["key_id"]]["revoked"] is True
    assert "secret" not in listed[key["key_id"]]
    # Revoking again is harmless.
    assert requests.delete(f"{gateway.url}/v1/keys/{key['key_id']}", timeout=10).status_code == 204


def test_revoking_an_unknown_key_is_404(gateway):
    response = requests.delete(f"{gateway.url}/v1/keys/{uuid.uuid4().hex}", timeout=10)
    assert response.status_code == 404
    assert response.json() == {"detail": "API key not found"}


@pytest.mark.parametrize("body, detail", [
    ({}, [{"loc": ["body", "label"], "msg": "Field required", "type": "missing"}]),
    ({"label": 5}, [{"loc": ["body", "label"], "msg": "Input should be a valid string", "type": "string_type"}]),
    ({"label": "x" * 101},
     [{"loc": ["body", "label"], "msg": "String should have at most 100 characters", "type": "string_too_long"}]),
    ({"label": "x", "scopes": "admin"},
     [{"loc": ["body", "scopes"], "msg": "Input should be a valid list", "type": "list_type"}]),
    ({"label": "x", "scopes": ["two words"]},
     [{"loc": ["body", "scopes", 0], "msg": "String should match pattern '^\\S+$'", "type": "string_pattern_mismatch"}]),
])
def test_bad_create_bodies_are_422(gateway, body, detail):
    response = requests.post(f"{gateway.url}/v1/keys", json=body, timeout=10)
    assert response.status_code == 422
    assert response.json() == {"detail": detail}


def test_a_label_of_exactly_100_characters_is_accepted(gateway):
    assert create_key(gateway, "x" * 100).status_code == 200


def test_using_a_key_records_last_used_at(gateway):
    key = create_key(gateway).json()
    assert requests.post(f"{gateway.url}/v1/session/message", json={"message": "hi"},
                         headers={"X-API-Key": key["secret"]}, timeout=30).status_code == 200
    last_used = {k["key_id"]: k for k in list_keys(gateway)}[key["key_id"]]["last_used_at"]
    assert isinstance(last_used, float) and key["created_at"] <= last_used <= time.time()


def test_legacy_api_message_accepts_an_active_v1_key_and_refuses_a_revoked_one(gateway):
    key = create_key(gateway, "legacy client").json()
    answer = legacy(gateway.url, "/api_message", {"message": "via v1 key"}, key=key["secret"])
    assert answer.status_code == 200, answer.text
    assert answer.json()["response"] == "Echo: via v1 key"
    # As a body field too, the way some Agent Zero clients send it.
    assert legacy(gateway.url, "/api_message", {"message": "b", "api_key": key["secret"]}, key=None).status_code == 200

    assert requests.delete(f"{gateway.url}/v1/keys/{key['key_id']}", timeout=10).status_code == 204
    refused = legacy(gateway.url, "/api_message", {"message": "again"}, key=key["secret"])
    assert refused.status_code == 401
    assert refused.text == "Invalid API key"


@pytest.fixture
def fresh_stack(stack):
    """Backends of this mode with nothing in them yet (real mode: a Postgres schema of its own)."""
    backends = Stack(stack.mode, stack.broker)
    yield backends
    backends.drop()


def test_legacy_surface_is_open_until_the_first_v1_key_exists(fresh_stack):
    deployment = Deployment(fresh_stack, {"LEGACY_API_KEY": ""})
    try:
        server = deployment.start_gateway()
        assert legacy(server.url, "/api_message", {"message": "open"}, key=None).status_code == 200
        key = create_key(server).json()
        required = legacy(server.url, "/api_message", {"message": "closed"}, key=None)
        assert (required.status_code, required.text) == (401, "API key required")
        assert legacy(server.url, "/api_message", {"message": "with key"}, key=key["secret"]).status_code == 200
        # Revoking every key does not reopen the surface: an operator who issued keys meant to close it.
        assert requests.delete(f"{server.url}/v1/keys/{key['key_id']}", timeout=10).status_code == 204
        revoked = legacy(server.url, "/api_message", {"message": "revoked"}, key=key["secret"])
        assert (revoked.status_code, revoked.text) == (401, "Invalid API key")
        required = legacy(server.url, "/api_message", {"message": "closed"}, key=None)
        assert (required.status_code, required.text) == (401, "API key required")
    finally:
        deployment.stop()
