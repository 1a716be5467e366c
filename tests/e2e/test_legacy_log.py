"""`GET|POST /api_log_get` over HTTP against the gateway under gunicorn: every row of its contract."""

from __future__ import annotations

import base64
import json
import time
import uuid

import pytest
import requests

from clients import LEGACY_KEY, legacy, v1_message

ITEM_KEYS = ["no", "id", "type", "heading", "content", "temp", "kvps", "timestamp", "agentno"]
LOG_KEYS = ["guid", "total_items", "returned_items", "start_position", "progress", "progress_active", "items"]


def log_get(base: str, params: dict | None = None, key: str | None = LEGACY_KEY, path: str = "/api_log_get"):
    headers = {"X-API-KEY": key} if key else {}
    return requests.get(f"{base}{path}", params=params, headers=headers, timeout=30)


def new_context(base: str, message: str = "hello log", **fields) -> str:
    response = legacy(base, "/api_message", {"message": message, **fields})
    assert response.status_code == 200, response.text
    return response.json()["context_id"]


def test_log_of_a_finished_exchange(gateway):
    context_id = new_context(gateway.url, "hello log")
    response = log_get(gateway.url, {"context_id": context_id})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert response.text == json.dumps(body)
    assert list(body) == ["context_id", "log"] and body["context_id"] == context_id
    log = body["log"]
    assert list(log) == LOG_KEYS
    uuid.UUID(log["guid"])
    assert {k: log[k] for k in LOG_KEYS[1:6]} == {
        "total_items": 2, "returned_items": 2, "start_position": 0,
        "progress": "Waiting for input", "progress_active": False}
    user, reply = log["items"]
    assert all(list(item) == ITEM_KEYS for item in (user, reply))
    assert {k: user[k] for k in ("no", "type", "heading", "content", "temp", "kvps", "agentno")} == {
        "no": 0, "type": "user", "heading": "User message", "content": "hello log", "temp": False,
        "kvps": {"attachments": []}, "agentno": 0}
    # The streamed chunks became one item, finalized by the completed reply.
    assert {k: reply[k] for k in ("no", "type", "heading", "content", "temp", "kvps", "agentno")} == {
        "no": 1, "type": "response", "heading": "Response", "content": "Echo: hello log", "temp": False,
        "kvps": {"source": "reference_worker", "status": "completed"}, "agentno": 0}
    assert isinstance(user["timestamp"], float) and user["timestamp"] <= reply["timestamp"]
    assert abs(user["timestamp"] - time.time()) < 60
    uuid.UUID(user["id"])
    uuid.UUID(reply["id"])


def test_post_body_and_aliases_give_the_same_log(gateway):
    context_id = new_context(gateway.url)
    expected = log_get(gateway.url, {"context_id": context_id}).json()
    assert legacy(gateway.url, "/api_log_get", {"context_id": context_id}).json() == expected
    assert legacy(gateway.url, "/api/api_log_get", {"context_id": context_id}).json() == expected
    assert log_get(gateway.url, {"context_id": context_id}, path="/api/api_log_get").json() == expected


def test_length_returns_the_newest_items_oldest_first(gateway):
    context_id = new_context(gateway.url, "m0")
    for n in (1, 2):
        legacy(gateway.url, "/api_message", {"message": f"m{n}", "context_id": context_id})
    full = log_get(gateway.url, {"context_id": context_id}).json()["log"]
    assert [i["content"] for i in full["items"]] == ["m0", "Echo: m0", "m1", "Echo: m1", "m2", "Echo: m2"]
    assert [i["no"] for i in full["items"]] == list(range(6))

    for response in (log_get(gateway.url, {"context_id": context_id, "length": "2"}),
                     legacy(gateway.url, "/api_log_get", {"context_id": context_id, "length": 2})):
        log = response.json()["log"]
        assert (log["total_items"], log["returned_items"], log["start_position"]) == (6, 2, 4)
        assert log["items"] == full["items"][4:]
    log = log_get(gateway.url, {"context_id": context_id, "length": "1000"}).json()["log"]
    assert (log["returned_items"], log["start_position"], log["items"]) == (6, 0, full["items"])


@pytest.mark.parametrize("length", ["x", "0", "-1", "1.5", "", "1e3"])
def test_bad_length_in_the_query_string_is_400(gateway, length):
    context_id = new_context(gateway.url)
    response = log_get(gateway.url, {"context_id": context_id, "length": length})
    assert (response.status_code, response.json()) == (400, {"error": "length must be a positive integer"})


@pytest.mark.parametrize("length", [True, False, 0, -1, 1.5, 2.0, "x", [], {}])
def test_bad_length_in_the_json_body_is_400(gateway, length):
    response = legacy(gateway.url, "/api_log_get", {"context_id": "any", "length": length})
    assert (response.status_code, response.json()) == (400, {"error": "length must be a positive integer"})


@pytest.mark.parametrize("params", [None, {"context_id": ""}, {"length": "5"}])
def test_missing_context_id_in_the_query_is_400(gateway, params):
    response = log_get(gateway.url, params)
    assert (response.status_code, response.json()) == (400, {"error": "context_id is required"})


@pytest.mark.parametrize("body", [{}, {"context_id": ""}, {"context_id": None}, {"context_id": 5}, ["context_id"]])
def test_missing_context_id_in_the_body_is_400(gateway, body):
    response = legacy(gateway.url, "/api_log_get", body)
    assert (response.status_code, response.json()) == (400, {"error": "context_id is required"})


def test_non_json_post_reads_as_empty(gateway):
    response = requests.post(f"{gateway.url}/api_log_get", data="context_id=x", timeout=10,
                             headers={"X-API-KEY": LEGACY_KEY, "Content-Type": "application/x-www-form-urlencoded"})
    assert (response.status_code, response.json()) == (400, {"error": "context_id is required"})


def test_unknown_context_is_404(gateway):
    for response in (log_get(gateway.url, {"context_id": "no-such-context"}),
                     legacy(gateway.url, "/api_log_get", {"context_id": "no-such-context", "length": 3})):
        assert (response.status_code, response.json()) == (404, {"error": "Context not found"})


def test_keyless_and_wrong_key_calls_are_401(gateway):
    context_id = new_context(gateway.url)
    response = log_get(gateway.url, {"context_id": context_id}, key=None)
    assert (response.status_code, response.text) == (401, "API key required")
    response = log_get(gateway.url, {"context_id": context_id}, key="wrong")
    assert (response.status_code, response.text) == (401, "Invalid API key")


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("path", ["/api_log_get", "/api/api_log_get"])
def test_other_methods_are_405(gateway, method, path):
    response = requests.request(method, f"{gateway.url}{path}", timeout=10)
    assert (response.status_code, response.json()) == (405, {"error": "Method Not Allowed"})


def test_attachment_names_are_listed_in_the_user_item(gateway):
    files = [{"filename": "notes one.txt", "base64": base64.b64encode(b"n").decode()},
             {"filename": "../img.png", "base64": base64.b64encode(b"\x89PNG").decode()},
             {"filename": "broken.bin", "base64": "%%%"}]
    context_id = new_context(gateway.url, "see files", attachments=files)
    user = log_get(gateway.url, {"context_id": context_id}).json()["log"]["items"][0]
    assert user["kvps"] == {"attachments": ["notes_one.txt", "img.png"]}


def test_v1_messages_of_the_same_session_appear_in_the_legacy_log(gateway):
    context_id = new_context(gateway.url, "from legacy")
    v1_message(gateway.url, "from v1", session_id=context_id)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        log = log_get(gateway.url, {"context_id": context_id}).json()["log"]
        if log["total_items"] == 4 and not log["progress_active"]:
            break
        time.sleep(0.05)
    assert [(i["type"], i["content"]) for i in log["items"]] == [
        ("user", "from legacy"), ("response", "Echo: from legacy"),
        ("user", "from v1"), ("response", "Echo: from v1")]


def test_progress_while_the_reply_is_pending_and_streaming(start_gateway):
    slow = start_gateway({"WORKER_REPLY_DELAY_MS": "400", "WORKER_REPLY_CHUNKS": "3"})
    session_id = v1_message(slow.url, "one two three")["session_id"]
    seen: list[tuple[bool, str, list]] = []
    deadline = time.monotonic() + 60  # a fresh worker group may take a while to join
    while time.monotonic() < deadline:
        log = log_get(slow.url, {"context_id": session_id}).json()["log"]
        state = (log["progress_active"], log["progress"], [(i["type"], i["content"]) for i in log["items"]])
        if not seen or seen[-1] != state:
            seen.append(state)
        if not log["progress_active"] and log["total_items"] == 2:
            break
        time.sleep(0.03)
    assert seen[0] == (True, "User message", [("user", "one two three")])
    streaming = [s for s in seen if s[0] and len(s[2]) == 2]
    assert streaming, seen
    assert all(s[1] == "Response" and s[2][1][0] == "response" for s in streaming)
    assert [s[2][1][1] for s in streaming] == ["Echo:", "Echo: one two"]
    assert seen[-1] == (False, "Waiting for input",
                        [("user", "one two three"), ("response", "Echo: one two three")])
