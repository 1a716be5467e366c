"""How the views answer when a backend fails (the real broker-down case is in the Kafka tests)."""

from __future__ import annotations

import pytest

from gateway.app import create_app
from gateway.bus import BusUnavailable
from gateway.runtime import current_runtime

KEY = {"X-API-KEY": "k"}


@pytest.fixture
def app():
    app = create_app({"LEGACY_API_KEY": "k", "RUN_WORKER_IN_PROCESS": "false", "BRIDGE_TIMEOUT_SECONDS": "0.2"})
    yield app
    app.extensions["gateway"].stop()


@pytest.fixture
def refusing_bus(app):
    """The bus refuses every publish, as Kafka does when no broker acknowledges in time."""
    with app.app_context():
        bus = current_runtime().bus

    def refuse(*args, **kwargs):
        raise BusUnavailable("no broker")

    bus.publish = refuse
    return bus


def test_v1_message_is_502_when_the_bus_refuses(app, refusing_bus):
    response = app.test_client().post("/v1/session/message", json={"message": "hi"})
    assert (response.status_code, response.get_json()) == (502, {"detail": "Message queue unavailable"})


def test_v1_action_is_502_when_the_bus_refuses(app, refusing_bus):
    response = app.test_client().post("/v1/session/action", json={"action": "summarize"})
    assert (response.status_code, response.get_json()) == (502, {"detail": "Message queue unavailable"})


def test_legacy_message_is_502_when_the_bus_refuses(app, refusing_bus):
    response = app.test_client().post("/api_message", json={"message": "hi"}, headers=KEY)
    assert (response.status_code, response.get_json()) == (502, {"error": "Message queue unavailable"})


def test_refused_message_is_not_in_history_and_idempotency_key_is_released(app, refusing_bus):
    client = app.test_client()
    headers = {"Idempotency-Key": "retry-me"}
    assert client.post("/v1/session/message", json={"message": "hi", "session_id": "s"}, headers=headers).status_code == 502
    with app.app_context():
        assert current_runtime().store.history("s") == []
    del refusing_bus.publish  # the broker is back
    response = client.post("/v1/session/message", json={"message": "hi", "session_id": "s"}, headers=headers)
    assert response.status_code == 200


def test_unexpected_failure_on_legacy_is_500_without_traceback(app):
    with app.app_context():
        store = current_runtime().store

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire\nTraceback (most recent call last)")

    store.get_session = broken
    response = app.test_client().post("/api_message", json={"message": "hi", "context_id": "x"}, headers=KEY)
    assert response.status_code == 500
    assert response.get_json() == {"error": "Internal server error: RuntimeError"}


def test_unexpected_failure_on_v1_is_500_detail(app):
    with app.app_context():
        store = current_runtime().store
    store.ensure_session = lambda *a, **k: 1 / 0
    response = app.test_client().post("/v1/session/message", json={"message": "hi"})
    assert (response.status_code, response.get_json()) == (500, {"detail": "Internal Server Error"})
