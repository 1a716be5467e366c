"""`POST /api_message` over HTTP against the gateway under gunicorn: every row of its contract."""

from __future__ import annotations

import json

import pytest
import requests

from clients import LEGACY_KEY, legacy, sse, until_final, v1_message


def test_new_context_gets_the_reference_workers_reply(gateway):
    response = legacy(gateway.url, "/api_message", {"message": "hello there"})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert list(body) == ["context_id", "response"]
    assert body["response"] == "Echo: hello there"
    # Python's default json.dumps separators, as Agent Zero serialised.
    assert response.text == json.dumps(body)


def test_same_context_continues_the_conversation(gateway):
    first = legacy(gateway.url, "/api_message", {"message": "one"}).json()
    second = legacy(gateway.url, "/api_message", {"message": "two", "context_id": first["context_id"]})
    assert second.status_code == 200
    assert second.json() == {"context_id": first["context_id"], "response": "Echo: two"}


def test_agent_zero_1x_alias_behaves_the_same(gateway):
    response = legacy(gateway.url, "/api/api_message", {"message": "via alias"})
    assert response.status_code == 200
    assert response.json()["response"] == "Echo: via alias"


def test_key_in_body_is_accepted(gateway):
    response = legacy(gateway.url, "/api_message", {"message": "hi", "api_key": LEGACY_KEY}, key=None)
    assert response.status_code == 200


def test_non_empty_header_wins_over_body_key(gateway):
    response = legacy(gateway.url, "/api_message", {"message": "hi", "api_key": LEGACY_KEY}, key="wrong")
    assert (response.status_code, response.text) == (401, "Invalid API key")


@pytest.mark.parametrize("kwargs", [
    {"json": {"message": "hi"}},
    {"data": "not json at all", "headers": {"Content-Type": "text/plain"}},
    {"data": "{broken", "headers": {"Content-Type": "application/json"}},
])
def test_keyless_call_is_401_api_key_required(gateway, kwargs):
    response = requests.post(f"{gateway.url}/api_message", timeout=10, **kwargs)
    assert (response.status_code, response.text) == (401, "API key required")


@pytest.mark.parametrize("where", ["header", "body"])
def test_wrong_key_is_401_invalid(gateway, where):
    if where == "header":
        response = legacy(gateway.url, "/api_message", {"message": "hi"}, key="nope")
    else:
        response = legacy(gateway.url, "/api_message", {"message": "hi", "api_key": "nope"}, key=None)
    assert (response.status_code, response.text) == (401, "Invalid API key")


@pytest.mark.parametrize("body", [{}, {"message": ""}, {"message": None}, {"message": 42}, ["message"]])
def test_missing_or_empty_message_is_400(gateway, body):
    response = legacy(gateway.url, "/api_message", body)
    assert response.status_code == 400
    assert response.json() == {"error": "Message is required"}


def test_non_json_body_reads_as_empty(gateway):
    response = requests.post(f"{gateway.url}/api_message", data="message=hi", timeout=10,
                             headers={"X-API-KEY": LEGACY_KEY, "Content-Type": "application/x-www-form-urlencoded"})
    assert (response.status_code, response.json()) == (400, {"error": "Message is required"})


def test_vendor_json_content_type_is_read(gateway):
    response = requests.post(f"{gateway.url}/api_message", data=json.dumps({"message": "vendor"}), timeout=30,
                             headers={"X-API-KEY": LEGACY_KEY, "Content-Type": "application/vnd.a0+json"})
    assert response.status_code == 200
    assert response.json()["response"] == "Echo: vendor"


def test_unknown_context_is_404(gateway):
    response = legacy(gateway.url, "/api_message", {"message": "hi", "context_id": "no-such-context"})
    assert (response.status_code, response.json()) == (404, {"error": "Context not found"})


@pytest.mark.parametrize("value", ["abc", None, True, [1], {"h": 1}])
def test_lifetime_hours_must_be_a_number(gateway, value):
    response = legacy(gateway.url, "/api_message", {"message": "hi", "lifetime_hours": value})
    assert (response.status_code, response.json()) == (400, {"error": "lifetime_hours must be a number"})


def test_attachments_do_not_break_the_call(gateway):
    body = {"message": "with files", "attachments": [
        {"filename": "a.txt", "base64": "aGVsbG8="}, "not an object", {"filename": "../x"}]}
    response = legacy(gateway.url, "/api_message", body)
    assert (response.status_code, response.json()["response"]) == (200, "Echo: with files")


def test_other_methods_are_405(gateway):
    response = requests.get(f"{gateway.url}/api_message", timeout=10)
    assert response.status_code == 405
    assert response.json() == {"error": "Method Not Allowed"}


def test_project_fields_travel_in_the_event_metadata(gateway):
    body = {"message": "project", "project_name": "apollo", "agent_profile": "researcher"}
    context_id = legacy(gateway.url, "/api_message", body).json()["context_id"]
    with sse(gateway.url, context_id, params={"from": "start"}) as events:
        final = until_final(events)[-1]
    assert final.data["metadata"]["project_name"] == "apollo"
    assert final.data["metadata"]["agent_profile"] == "researcher"
    assert final.data["metadata"]["request_event_id"]


def test_no_reply_in_time_is_504_and_the_late_reply_still_lands(start_gateway):
    slow = start_gateway({"BRIDGE_TIMEOUT_SECONDS": "0.3", "WORKER_REPLY_DELAY_MS": "300"})
    session_id = v1_message(slow.url, "first")["session_id"]
    response = legacy(slow.url, "/api_message", {"message": "slow", "context_id": session_id})
    assert (response.status_code, response.json()) == (504, {"error": "Timed out waiting for agent response"})
    with sse(slow.url, session_id, params={"from": "start"}) as events:
        finals = [e for e in until_final(events, finals=2) if e.event == "assistant.final"]
    assert [e.data["message"] for e in finals] == ["Echo: first", "Echo: slow"]
