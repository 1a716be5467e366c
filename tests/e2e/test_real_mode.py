"""What only the real mode promises: several processes, restarts, and a broker that goes away."""

from __future__ import annotations

import re
import time
import uuid

import requests

from clients import legacy, sse, until_final, v1_message
from kafka_broker import KafkaBroker


def served_by(server, method: str, path: str) -> list[str]:
    """The worker pids gunicorn's access log names for requests to `path`."""
    pattern = re.compile(rf'"{method} {re.escape(path)} HTTP/1.1" \d+ \S+ \S+ pid=<?(\d+)>?')
    return pattern.findall(server.output())


def test_two_gunicorn_workers_share_every_session(deploy_real):
    server = deploy_real().start_gateway(workers=2)
    # Which worker accepts a connection is up to the kernel: repeat until the stream and the legacy
    # call were served by different workers, checking the reply reached the stream every time.
    for attempt in range(20):
        session_id = f"two-workers-{uuid.uuid4()}"
        v1_message(server.url, "open", session_id=session_id)
        with sse(server.url, session_id, params={"from": "start"}) as events:
            until_final(events)
            reply = legacy(server.url, "/api_message", {"message": f"attempt {attempt}", "context_id": session_id})
            assert reply.status_code == 200
            assert reply.json()["response"] == f"Echo: attempt {attempt}"
            assert until_final(events)[-1].data["message"] == f"Echo: attempt {attempt}"
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            streams = served_by(server, "GET", f"/v1/session/{session_id}/events")
            if streams:
                break
            time.sleep(0.05)  # the access log line is written when the stream has closed
        calls = served_by(server, "POST", "/api_message")
        if streams and calls and streams[-1] != calls[-1]:
            return
    raise AssertionError("the stream and the legacy call never landed on different workers")


def test_history_and_resume_survive_a_gateway_restart(deploy_real):
    deployment = deploy_real()
    server = deployment.start_gateway()
    session_id = f"restart-{uuid.uuid4()}"
    with sse(server.url, session_id) as events:
        v1_message(server.url, "before restart", session_id=session_id)
        first = until_final(events)
    server.restart()
    reply = legacy(server.url, "/api_message", {"message": "after restart", "context_id": session_id})
    assert reply.status_code == 200, reply.text
    with sse(server.url, session_id, params={"from": "start"}) as events:
        history = until_final(events, finals=2)
    assert [e.data["message"] for e in history if e.event == "assistant.final"] == [
        "Echo: before restart", "Echo: after restart"]
    assert [e.id for e in history[:len(first)]] == [e.id for e in first]
    with sse(server.url, session_id, last_event_id=first[-1].id) as events:
        resumed = until_final(events)
    assert [e.data["message"] for e in resumed][-1] == "Echo: after restart"
    assert all(int(e.id) > int(first[-1].id) for e in resumed)


def test_a_broker_outage_is_reported_bounded_and_recovered_from(real_stack, deploy_real):
    with KafkaBroker() as broker:
        deployment = deploy_real({"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
                                  "KAFKA_PUBLISH_TIMEOUT_SECONDS": "2"})
        server = deployment.start_gateway()
        assert v1_message(server.url, "broker up")["event_id"]

        broker.stop()
        started = time.monotonic()
        health = requests.get(f"{server.url}/v1/health", timeout=15)
        assert time.monotonic() - started < 6
        assert health.status_code == 200
        body = health.json()
        assert body["status"] == "down"
        assert body["components"]["kafka"]["status"] == "down"
        assert body["components"]["kafka"]["detail"]
        assert body["components"]["postgres"]["status"] == "ok"
        assert requests.get(f"{server.url}/v1/health?strict=true", timeout=15).status_code == 503

        started = time.monotonic()
        response = requests.post(f"{server.url}/v1/session/message", json={"message": "broker down"}, timeout=15)
        assert (response.status_code, response.json()) == (502, {"detail": "Message queue unavailable"})
        assert time.monotonic() - started < 5
        response = legacy(server.url, "/api_message", {"message": "broker down"})
        assert (response.status_code, response.json()) == (502, {"error": "Message queue unavailable"})
        response = requests.get(f"{server.url}/v1/session/{uuid.uuid4()}/events", timeout=15)
        assert (response.status_code, response.json()) == (502, {"detail": "Message queue unavailable"})

        broker.start()
        deadline = time.monotonic() + 30
        while True:
            response = requests.post(f"{server.url}/v1/session/message", json={"message": "broker back"}, timeout=15)
            if response.status_code == 200 or time.monotonic() > deadline:
                break
        assert response.status_code == 200, response.text
        assert requests.get(f"{server.url}/v1/health", timeout=15).json()["components"]["kafka"]["status"] == "ok"
