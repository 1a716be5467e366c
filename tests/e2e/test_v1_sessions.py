"""`POST /v1/session/message`, `POST /v1/session/action`, health and the FastAPI error dialect."""

from __future__ import annotations

import uuid

import pytest
import requests

from clients import sse, until_final, v1_message


def post(gateway, path, body=None, **kwargs):
    return requests.post(f"{gateway.url}{path}", json=body, timeout=30, **kwargs)


def test_message_answers_session_and_event_ids(gateway):
    response = post(gateway, "/v1/session/message", {"message": "hi"})
    assert response.status_code == 200
    assert response.headers["X-API-Version"] == "v1"
    body = response.json()
    assert list(body) == ["session_id", "event_id"]
    uuid.UUID(body["session_id"])
    uuid.UUID(body["event_id"])


def test_any_session_id_string_is_accepted_and_answered(gateway):
    session_id = f"not-a-uuid {uuid.uuid4().hex}/ü"
    body = v1_message(gateway.url, "odd id", session_id=session_id)
    assert body["session_id"] == session_id
    with sse(gateway.url, requests.utils.quote(session_id, safe=""), params={"from": "start"}) as events:
        final = until_final(events)[-1]
    assert final.data["session_id"] == session_id
    assert final.data["message"] == "Echo: odd id"


def test_message_metadata_persona_and_attachments_reach_the_worker(gateway):
    body = v1_message(gateway.url, "meta", persona_id="p-1", attachments=["ref-1"], metadata={"k": "v"})
    with sse(gateway.url, body["session_id"], params={"from": "start"}) as events:
        final = until_final(events)[-1].data
    assert final["persona_id"] == "p-1"
    assert final["metadata"]["k"] == "v"


@pytest.mark.parametrize("body, detail", [
    ({}, [{"loc": ["body", "message"], "msg": "Field required", "type": "missing"}]),
    ({"message": 5}, [{"loc": ["body", "message"], "msg": "Input should be a valid string", "type": "string_type"}]),
    ({"message": "x", "metadata": {"n": 1}},
     [{"loc": ["body", "metadata", "n"], "msg": "Input should be a valid string", "type": "string_type"}]),
    ({"message": "x", "attachments": "a"},
     [{"loc": ["body", "attachments"], "msg": "Input should be a valid list", "type": "list_type"}]),
    ({"message": "x", "session_id": 7},
     [{"loc": ["body", "session_id"], "msg": "Input should be a valid string", "type": "string_type"}]),
])
def test_message_validation_errors_are_422_lists(gateway, body, detail):
    response = post(gateway, "/v1/session/message", body)
    assert response.status_code == 422
    assert response.json() == {"detail": detail}


def test_malformed_json_is_422(gateway):
    response = requests.post(f"{gateway.url}/v1/session/message", data="{nope", timeout=10,
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json() == {"detail": [{"loc": ["body", 0], "msg": "JSON decode error", "type": "json_invalid"}]}


def test_missing_body_is_422(gateway):
    response = requests.post(f"{gateway.url}/v1/session/message", timeout=10)
    assert response.status_code == 422
    assert response.json() == {"detail": [{"loc": ["body"], "msg": "Field required", "type": "missing"}]}


@pytest.mark.parametrize("action, text", [
    ("summarize", "Summarize the recent conversation for the operator."),
    ("next_steps", "Suggest the next three actionable steps."),
    ("status_report", "Provide a short status report of current progress."),
])
def test_action_publishes_its_template(gateway, action, text):
    response = post(gateway, "/v1/session/action", {"action": action, "metadata": {"who": "op"}})
    assert response.status_code == 200
    body = response.json()
    with sse(gateway.url, body["session_id"], params={"from": "start"}) as events:
        final = until_final(events)[-1].data
    assert final["message"] == f"Echo: {text}"
    assert final["metadata"]["source"] == "reference_worker"
    assert final["metadata"]["action"] == action
    assert final["metadata"]["who"] == "op"


def test_unknown_action_is_400(gateway):
    response = post(gateway, "/v1/session/action", {"action": "dance"})
    assert (response.status_code, response.json()) == (400, {"detail": "Unknown action"})


def test_missing_action_is_422(gateway):
    response = post(gateway, "/v1/session/action", {"metadata": {}})
    assert response.status_code == 422
    assert response.json() == {"detail": [{"loc": ["body", "action"], "msg": "Field required", "type": "missing"}]}


def test_idempotency_key_replays_the_first_answer_and_publishes_once(gateway):
    session_id = f"idem-{uuid.uuid4()}"
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = {"message": "once", "session_id": session_id}
    first = post(gateway, "/v1/session/message", body, headers=key)
    again = post(gateway, "/v1/session/message", body, headers=key)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    # A later message of the same session is answered after any reply to the first; so when its
    # reply arrives, every reply the replay could have caused is on the stream already.
    v1_message(gateway.url, "later", session_id=session_id)
    with sse(gateway.url, session_id, params={"from": "start"}) as events:
        finals = [e.data["message"] for e in until_final(events, finals=2) if e.event == "assistant.final"]
    assert finals == ["Echo: once", "Echo: later"]


def test_idempotency_key_with_a_different_body_is_422(gateway):
    key = {"Idempotency-Key": str(uuid.uuid4())}
    assert post(gateway, "/v1/session/message", {"message": "a"}, headers=key).status_code == 200
    response = post(gateway, "/v1/session/message", {"message": "b"}, headers=key)
    assert response.status_code == 422
    assert response.json() == {"detail": "Idempotency-Key reused with a different request"}


def test_overlong_idempotency_key_is_422(gateway):
    response = post(gateway, "/v1/session/message", {"message": "a"}, headers={"Idempotency-Key": "k" * 256})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["header", "idempotency-key"]


def test_health_lists_the_components_in_use(gateway, mode):
    expected = ({"bus": "memory", "store": "memory", "cache": "memory"} if mode == "embedded"
                else {"kafka": "kafka", "postgres": "postgres", "redis": "redis"})
    for path in ("/v1/health", "/health"):
        response = requests.get(f"{gateway.url}{path}", timeout=10)
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "ok"
        assert {name: body["components"][name]["backend"] for name in expected} == expected
        assert all(body["components"][name]["status"] == "ok" for name in expected)
        assert body["components"]["worker"]["backend"] == ("in-process" if mode == "embedded" else "external")
    assert requests.get(f"{gateway.url}/v1/health?strict=true", timeout=10).status_code == 200


def test_unknown_route_is_fastapi_404(gateway):
    response = requests.get(f"{gateway.url}/v1/nothing-here", timeout=10)
    assert (response.status_code, response.json()) == (404, {"detail": "Not Found"})
    assert response.headers["X-API-Version"] == "v1"


def test_wrong_method_is_fastapi_405(gateway):
    response = requests.get(f"{gateway.url}/v1/session/message", timeout=10)
    assert (response.status_code, response.json()) == (405, {"detail": "Method Not Allowed"})


def test_cors_preflight_is_answered_on_streams(gateway):
    response = requests.options(f"{gateway.url}/v1/session/abc/events", timeout=10, headers={
        "Origin": "https://ui.example", "Access-Control-Request-Method": "GET"})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_failing_optional_http_dependencies_make_health_degraded(start_gateway):
    from http_stub import http_server

    with http_server(status=200) as ok, http_server(status=503) as failing:
        server = start_gateway({"TELEMETRY_HEALTH_URL": f"{ok}/health",
                                "DELEGATION_HEALTH_URL": f"{failing}/health"})
        body = requests.get(f"{server.url}/v1/health?strict=true", timeout=10)
    assert body.status_code == 200  # degraded is not down
    components = body.json()["components"]
    assert body.json()["status"] == "degraded"
    assert components["telemetry_worker"]["status"] == "ok"
    assert components["delegation_gateway"]["status"] == "down"
    assert "503" in components["delegation_gateway"]["detail"]
