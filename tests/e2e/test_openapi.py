"""The OpenAPI document over HTTP: served at both paths, open, and true to what the running gateway answers."""

from __future__ import annotations

import uuid

import pytest
import requests
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

SECRET = "e2e-openapi-secret-long-enough-for-hs256"


def fetch_document(server) -> dict:
    response = requests.get(f"{server.url}/openapi.json", timeout=10)
    assert response.status_code == 200
    return response.json()


def validator(document: dict, schema: dict) -> Draft202012Validator:
    """A validator of `schema` whose `#/components/...` references resolve inside `document`."""
    return Draft202012Validator({**schema, "components": document["components"]})


def body_schema(document: dict, method: str, path: str) -> dict:
    return document["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]


def assert_documented(document: dict, method: str, path: str, response: requests.Response) -> None:
    """The answer's status, media type and body are ones the document gives for this operation."""
    answers = document["paths"][path][method]["responses"]
    answer = answers.get(str(response.status_code)) or answers.get("default")
    assert answer is not None, f"{method} {path}: {response.status_code} is not documented"
    assert response.headers["X-API-Version"] == "v1"
    if "content" not in answer:
        assert response.content == b"", f"{method} {path}: a body where none is documented"
        return
    media_type = response.headers["Content-Type"].split(";")[0]
    assert media_type in answer["content"], f"{method} {path}: {media_type} is not documented"
    if media_type == "application/json":
        errors = list(validator(document, answer["content"][media_type]["schema"]).iter_errors(response.json()))
        assert errors == [], f"{method} {path} {response.status_code}: {[e.message for e in errors]}"


@pytest.mark.parametrize("path", ["/openapi.json", "/v1/openapi.json"])
def test_the_document_is_served_at_both_paths(gateway, path):
    response = requests.get(f"{gateway.url}{path}", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["X-API-Version"] == "v1"
    document = response.json()
    validate(document)
    assert document["openapi"] == "3.1.0"
    assert document == fetch_document(gateway)


def test_the_document_is_open_when_tokens_are_required(start_gateway):
    server = start_gateway({"GATEWAY_JWT_SECRET": SECRET})
    for path in ("/openapi.json", "/v1/openapi.json"):
        response = requests.get(f"{server.url}{path}", timeout=10)
        assert response.status_code == 200, path
        assert response.json()["paths"]["/v1/session/message"]["post"]["security"] == [
            {"bearer": []}, {"apiKey": []}]
    protected = requests.post(f"{server.url}/v1/session/message", json={"message": "hi"}, timeout=10)
    assert (protected.status_code, protected.json()) == (401, {"detail": "Missing Authorization header"})


VALID_MESSAGES = [
    {"message": "hi"},
    {"message": "", "session_id": "s-openapi", "persona_id": None, "attachments": ["a.txt"],
     "metadata": {"k": "v"}},
    {"message": "hi", "unknown_field": 1},
]
INVALID_MESSAGES = [
    {},
    {"message": 1},
    {"message": None},
    {"message": "hi", "metadata": {"k": 1}},
    {"message": "hi", "metadata": ["k"]},
    {"message": "hi", "attachments": "a.txt"},
    {"message": "hi", "attachments": [1]},
    {"message": "hi", "session_id": 5},
    [],
    "hi",
]


@pytest.mark.parametrize("body", VALID_MESSAGES + INVALID_MESSAGES)
def test_message_bodies_the_schema_rejects_the_route_refuses(gateway, body):
    document = fetch_document(gateway)
    accepted_by_schema = validator(document, body_schema(document, "post", "/v1/session/message")).is_valid(body)
    assert accepted_by_schema == (body in VALID_MESSAGES)
    response = requests.post(f"{gateway.url}/v1/session/message", json=body, timeout=30)
    assert response.status_code == (200 if accepted_by_schema else 422), response.text
    assert_documented(document, "post", "/v1/session/message", response)


def test_the_gateway_answers_as_documented(gateway):
    document = fetch_document(gateway)
    url = gateway.url
    tag = uuid.uuid4().hex[:8]

    def check(method, path, *, concrete=None, **kwargs):
        response = requests.request(method, f"{url}{concrete or path}", timeout=30, **kwargs)
        assert_documented(document, method, path, response)
        return response

    assert check("get", "/v1/health").status_code == 200
    assert check("get", "/v1/openapi.json").status_code == 200
    assert check("post", "/v1/session/message", json={"message": "hi"}).status_code == 200
    assert check("post", "/v1/session/action", json={"action": "summarize"}).status_code == 200
    assert check("post", "/v1/session/action", json={"action": "dance"}).status_code == 400
    assert check("post", "/v1/route", json={"candidates": [f"m-{tag}"]}).status_code == 200
    assert check("post", "/v1/route", json={"candidates": []}).status_code == 400
    assert check("post", "/v1/route", json={"candidates": "m"}).status_code == 422

    created = check("post", "/v1/keys", json={"label": f"openapi {tag}"})
    assert created.status_code == 200
    assert check("get", "/v1/keys").status_code == 200
    key_path = "/v1/keys/{key_id}"
    assert check("delete", key_path, concrete=f"/v1/keys/{created.json()['key_id']}").status_code == 204
    assert check("delete", key_path, concrete=f"/v1/keys/{uuid.uuid4().hex}").status_code == 404

    profile = {"role": f"role-{tag}", "deployment_mode": "dev", "model": "m", "kwargs": {"a": 1}}
    one = "/v1/model-profiles/{role}/{deployment_mode}"
    assert check("post", "/v1/model-profiles", json=profile).status_code == 201
    assert check("get", "/v1/model-profiles", params={"deployment_mode": "dev"}).status_code == 200
    assert check("put", one, concrete=f"/v1/model-profiles/{profile['role']}/dev",
                 json={**profile, "deployment_mode": "prod"}).status_code == 400
    assert check("delete", one, concrete=f"/v1/model-profiles/{profile['role']}/dev").status_code == 200
    assert check("delete", one, concrete=f"/v1/model-profiles/{profile['role']}/dev").status_code == 404

    assert check("get", "/v1/requeue").status_code == 200
    resolve = "/v1/requeue/{requeue_id}/resolve"
    assert check("post", resolve, concrete=f"/v1/requeue/r-{tag}/resolve").status_code == 404
    assert check("post", resolve, concrete=f"/v1/requeue/r-{tag}/resolve",
                 params={"publish": "maybe"}).status_code == 422
    assert check("delete", "/v1/requeue/{requeue_id}", concrete=f"/v1/requeue/r-{tag}").status_code == 404


def test_the_event_stream_is_answered_as_documented(gateway):
    document = fetch_document(gateway)
    path = "/v1/session/{session_id}/events"
    with requests.get(f"{gateway.url}/v1/session/s-{uuid.uuid4().hex}/events", stream=True,
                      timeout=(5, 10)) as response:
        assert response.status_code == 200
        assert_documented(document, "get", path, response)
        assert response.headers["Content-Type"].split(";")[0] == "text/event-stream"
