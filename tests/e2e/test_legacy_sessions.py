"""`/api_terminate_chat`, `/api_reset_chat` and session expiry over HTTP, against gunicorn.

The gateway here sweeps expired sessions every 0.2 s and keeps attachments in a directory of the test,
so a test can watch a session's files disappear on disk without calling the gateway at all. In the
real mode it runs two worker processes on one Postgres, so two sweepers race for the same sessions.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from clients import legacy, sse, until_final
from conftest import Deployment
from gateway_server import GatewayServer

SWEEP_SECONDS = "0.2"
SHORT_LIFETIME_HOURS = 0.0003  # about 1.1 s


@dataclass
class Env:
    deployment: Deployment
    server: GatewayServer
    store: Path

    @property
    def url(self) -> str:
        return self.server.url

    def worker_log(self) -> str:
        worker = self.deployment.worker
        return worker.output() if worker is not None else self.server.output()


@pytest.fixture(scope="module")
def env(stack, tmp_path_factory):
    store = tmp_path_factory.mktemp("attachments")
    deployment = Deployment(stack, {"ATTACHMENTS_DIR": str(store), "SESSION_SWEEP_INTERVAL_SECONDS": SWEEP_SECONDS})
    try:
        server = deployment.start_gateway(workers=2 if stack.mode == "real" else 1)
        yield Env(deployment, server, store)
    finally:
        deployment.stop()


def wait_until(condition, timeout: float = 60.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def attachment(name: str, data: bytes = b"data") -> dict:
    return {"filename": name, "base64": base64.b64encode(data).decode()}


def new_chat(env: Env, message: str = "hi", **fields) -> str:
    response = legacy(env.url, "/api_message", {"message": message, **fields})
    assert response.status_code == 200, response.text
    return response.json()["context_id"]


def log_of(env: Env, context_id: str) -> requests.Response:
    return legacy(env.url, "/api_log_get", {"context_id": context_id})


def acknowledged(env: Env, control: str, context_id: str) -> int:
    return env.worker_log().count(f"acknowledged {control} event for session {context_id}")


@pytest.mark.parametrize("path", ["/api_terminate_chat", "/api/api_terminate_chat"])
def test_terminate_deletes_history_attachments_and_the_id(env, path):
    context_id = new_chat(env, "bye", attachments=[attachment("a.txt")])
    assert (env.store / context_id / "a.txt").is_file()

    response = legacy(env.url, path, {"context_id": context_id})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.text == ('{"success": true, "message": "Chat deleted successfully", '
                             f'"context_id": "{context_id}"}}')
    assert not (env.store / context_id).exists()
    assert legacy(env.url, "/api_files_get", {"paths": [f"attachments/{context_id}/a.txt"]}).json() == {}

    assert (log_of(env, context_id).status_code, log_of(env, context_id).json()) == (
        404, {"error": "Context not found"})
    again = legacy(env.url, "/api_message", {"message": "still there?", "context_id": context_id})
    assert (again.status_code, again.json()) == (404, {"error": "Context not found"})
    for later in ("/api_terminate_chat", "/api_reset_chat"):
        response = legacy(env.url, later, {"context_id": context_id})
        assert (response.status_code, response.json()) == (404, {"error": "Chat context not found"})
    # The worker hears of it once (a second terminate finds nothing and announces nothing).
    wait_until(lambda: acknowledged(env, "session.terminate", context_id) == 1)


@pytest.mark.parametrize("path", ["/api_reset_chat", "/api/api_reset_chat"])
def test_reset_keeps_the_id_clears_the_log_and_changes_its_guid(env, path):
    context_id = new_chat(env, "before reset", attachments=[attachment("kept.txt")])
    legacy(env.url, "/api_message", {"message": "second", "context_id": context_id})
    before = log_of(env, context_id).json()["log"]
    assert before["total_items"] == 4
    with sse(env.url, context_id, params={"from": "start"}) as events:
        old_ids = [e.id for e in until_final(events, finals=2)]

    response = legacy(env.url, path, {"context_id": context_id})
    assert response.status_code == 200
    assert response.text == ('{"success": true, "message": "Chat reset successfully", '
                             f'"context_id": "{context_id}"}}')
    after = log_of(env, context_id).json()
    assert after["context_id"] == context_id
    assert after["log"]["guid"] != before["guid"]
    assert {k: v for k, v in after["log"].items() if k != "guid"} == {
        "total_items": 0, "returned_items": 0, "start_position": 0, "progress": "Waiting for input",
        "progress_active": False, "items": []}
    assert (env.store / context_id / "kept.txt").is_file()  # a reset keeps the chat's files
    wait_until(lambda: acknowledged(env, "session.reset", context_id) == 1)

    # The chat goes on under the same id, its log numbered from 0 again.
    reply = legacy(env.url, "/api_message", {"message": "after reset", "context_id": context_id})
    assert reply.json() == {"context_id": context_id, "response": "Echo: after reset"}
    log = log_of(env, context_id).json()["log"]
    assert log["guid"] == after["log"]["guid"]
    assert [(i["no"], i["content"]) for i in log["items"]] == [(0, "after reset"), (1, "Echo: after reset")]

    # A stream resuming from before the reset is told to re-sync; a fresh replay has only the new turn.
    with sse(env.url, context_id, last_event_id=old_ids[0]) as events:
        assert next(events).event == "reset"
    with sse(env.url, context_id, params={"from": "start"}) as events:
        assert [e.data["message"] for e in until_final(events)][-1] == "Echo: after reset"


@pytest.mark.parametrize("path", ["/api_terminate_chat", "/api_reset_chat", "/api/api_reset_chat"])
@pytest.mark.parametrize("body", [{}, {"context_id": ""}, {"context_id": None}, {"context_id": 12}, "text"])
def test_missing_context_id_is_400(env, path, body):
    response = legacy(env.url, path, body)
    assert (response.status_code, response.json()) == (400, {"error": "context_id is required"})


@pytest.mark.parametrize("path", ["/api_terminate_chat", "/api_reset_chat", "/api/api_terminate_chat"])
def test_unknown_context_is_404_with_its_own_words(env, path):
    response = legacy(env.url, path, {"context_id": "no-such-chat"})
    assert (response.status_code, response.json()) == (404, {"error": "Chat context not found"})


@pytest.mark.parametrize("path", ["/api_terminate_chat", "/api_reset_chat", "/api/api_reset_chat"])
def test_keyless_call_is_401_and_get_is_405(env, path):
    response = requests.post(f"{env.url}{path}", json={"context_id": "x"}, timeout=10)
    assert (response.status_code, response.text) == (401, "API key required")
    response = requests.get(f"{env.url}{path}", timeout=10)
    assert (response.status_code, response.json()) == (405, {"error": "Method Not Allowed"})


def test_expired_session_is_terminated_by_the_sweep_without_any_call(env):
    context_id = new_chat(env, "short lived", lifetime_hours=SHORT_LIFETIME_HOURS,
                          attachments=[attachment("gone.txt")])
    directory = env.store / context_id
    assert directory.is_dir()
    # No request touches the gateway while we wait: only the sweep can remove the files.
    wait_until(lambda: not directory.exists(), timeout=20)
    response = log_of(env, context_id)
    assert (response.status_code, response.json()) == (404, {"error": "Context not found"})
    response = legacy(env.url, "/api_terminate_chat", {"context_id": context_id})
    assert (response.status_code, response.json()) == (404, {"error": "Chat context not found"})
    # Exactly like /api_terminate_chat: the worker is told, once, even with two sweepers racing.
    wait_until(lambda: acknowledged(env, "session.terminate", context_id) >= 1)
    assert acknowledged(env, "session.terminate", context_id) == 1


def test_each_call_slides_the_expiry(env):
    kept = new_chat(env, "first", lifetime_hours=SHORT_LIFETIME_HOURS, attachments=[attachment("k.txt")])
    legacy(env.url, "/api_message", {"message": "extend", "context_id": kept, "lifetime_hours": 1})
    # A session that expires later than `kept` would have: once the sweep removed it, `kept` was
    # swept past its first expiry too, and survived.
    probe = new_chat(env, "probe", lifetime_hours=SHORT_LIFETIME_HOURS, attachments=[attachment("p.txt")])
    wait_until(lambda: not (env.store / probe).exists(), timeout=20)
    assert (env.store / kept / "k.txt").is_file()
    assert log_of(env, kept).status_code == 200

