"""SSE and WebSocket streams over real connections: frames, resume, heartbeat, the legacy link."""

from __future__ import annotations

import json
import time
import uuid

import requests
import websocket

from clients import legacy, sse, until_final, v1_message


def new_session() -> str:
    return f"s-{uuid.uuid4()}"


def test_legacy_call_is_visible_on_the_sse_stream_of_its_context(gateway):
    reply = legacy(gateway.url, "/api_message", {"message": "shared conversation"}).json()
    with sse(gateway.url, reply["context_id"], params={"from": "start"}) as events:
        seen = until_final(events)
    assert [e.event for e in seen] == ["assistant.stream", "assistant.stream", "assistant.final"]
    assert [e.data["message"] for e in seen] == ["Echo:", "Echo: shared", "Echo: shared conversation"]
    assert [e.data["metadata"]["stream_index"] for e in seen[:-1]] == [0, 1]
    assert seen[-1].data["message"] == reply["response"]
    ids = [int(e.id) for e in seen]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_stream_frames_carry_retry_id_event_and_verbatim_data(gateway):
    session_id = new_session()
    with requests.get(f"{gateway.url}/v1/session/{session_id}/events", stream=True, timeout=(5, 10)) as response:
        assert response.headers["Cache-Control"] == "no-cache"
        lines = response.iter_lines(decode_unicode=True)
        assert next(lines) == "retry: 3000"
        v1_message(gateway.url, "frames", session_id=session_id)
        frame = []
        for line in lines:
            if line.startswith(":") or (line == "" and not frame):
                continue
            if line == "":
                break
            frame.append(line)
    assert frame[0].startswith("id: ")
    assert frame[1] == "event: assistant.stream"
    data = json.loads(frame[2].removeprefix("data: "))
    assert data["session_id"] == session_id and data["metadata"]["status"] == "streaming"


def test_heartbeat_comments_keep_an_idle_stream_alive(gateway):
    with requests.get(f"{gateway.url}/v1/session/{new_session()}/events", stream=True, timeout=(5, 5)) as response:
        lines = response.iter_lines(decode_unicode=True)
        assert next(lines) == "retry: 3000"
        assert next(line for line in lines if line) == ": ping"


def test_reconnect_with_last_event_id_gets_exactly_the_missed_message(gateway):
    session_id = new_session()
    with sse(gateway.url, session_id) as events:
        v1_message(gateway.url, "message one", session_id=session_id)
        first = until_final(events)
    last_id = first[-1].id
    # Message 2 is sent and fully answered while no client is connected.
    assert legacy(gateway.url, "/api_message", {"message": "message two", "context_id": session_id}).status_code == 200
    with sse(gateway.url, session_id, last_event_id=last_id) as events:
        missed = until_final(events)
        v1_message(gateway.url, "message three", session_id=session_id)
        live = until_final(events)
    assert [e.data["message"] for e in missed] == ["Echo:", "Echo: message", "Echo: message two"]
    assert [e.event for e in missed] == ["assistant.stream", "assistant.stream", "assistant.final"]
    ids = [int(e.id) for e in missed + live]
    assert ids == sorted(set(ids)) and ids[0] > int(last_id)
    assert live[-1].data["message"] == "Echo: message three"


def test_last_event_id_query_parameter_resumes_on_first_connect(gateway):
    session_id = new_session()
    legacy(gateway.url, "/api_message", {"message": "alpha", "context_id": ""})
    v1_message(gateway.url, "alpha", session_id=session_id)
    with sse(gateway.url, session_id, params={"from": "start"}) as events:
        alpha = until_final(events)
    legacy(gateway.url, "/api_message", {"message": "beta", "context_id": session_id})
    with sse(gateway.url, session_id, params={"last_event_id": alpha[-1].id}) as events:
        beta = until_final(events)
    assert [e.data["message"] for e in beta][-1] == "Echo: beta"
    assert all(e.data["message"] != "Echo: alpha" for e in beta)


def test_from_start_replays_the_whole_retained_history(gateway):
    session_id = new_session()
    v1_message(gateway.url, "first", session_id=session_id)
    legacy(gateway.url, "/api_message", {"message": "second", "context_id": session_id})
    with sse(gateway.url, session_id, params={"from": "start"}) as events:
        seen = until_final(events, finals=2)
    finals = [e.data["message"] for e in seen if e.event == "assistant.final"]
    assert finals == ["Echo: first", "Echo: second"]


def test_unusable_last_event_id_gets_one_reset_frame_then_live_events(gateway):
    session_id = new_session()
    with sse(gateway.url, session_id, last_event_id="999999999") as events:
        first = next(events)
        assert first.event == "reset"
        v1_message(gateway.url, "after reset", session_id=session_id)
        assert until_final(events)[-1].data["message"] == "Echo: after reset"
    with sse(gateway.url, session_id, last_event_id="garbage") as events:
        assert next(events).event == "reset"


def test_two_clients_of_one_session_both_get_every_event(gateway):
    session_id = new_session()
    with sse(gateway.url, session_id) as tab1, sse(gateway.url, session_id) as tab2:
        v1_message(gateway.url, "both tabs", session_id=session_id)
        one, two = until_final(tab1), until_final(tab2)
    assert [e.id for e in one] == [e.id for e in two]
    assert len(one) == 3


def ws_receive_until_final(ws) -> list[dict]:
    seen = []
    while True:
        message = json.loads(ws.recv())
        seen.append(message)
        if message.get("metadata", {}).get("status") == "completed":
            return seen


def test_websocket_streams_the_same_events_and_resumes(gateway):
    session_id = new_session()
    ws = websocket.create_connection(f"{gateway.ws_url}/v1/session/{session_id}/stream", timeout=10)
    try:
        v1_message(gateway.url, "over ws", session_id=session_id)
        first = ws_receive_until_final(ws)
    finally:
        ws.close()
    assert [m["message"] for m in first] == ["Echo:", "Echo: over", "Echo: over ws"]
    legacy(gateway.url, "/api_message", {"message": "missed on ws", "context_id": session_id})
    ws = websocket.create_connection(
        f"{gateway.ws_url}/v1/session/{session_id}/stream?last_event_id={first[-1]['stream_id']}", timeout=10)
    try:
        missed = ws_receive_until_final(ws)
    finally:
        ws.close()
    assert [m["message"] for m in missed] == ["Echo:", "Echo: missed on", "Echo: missed on ws"]
    assert int(missed[0]["stream_id"]) > int(first[-1]["stream_id"])
    # The same events as SSE: same positions.
    with sse(gateway.url, session_id, params={"from": "start"}) as events:
        sse_ids = [e.id for e in until_final(events, finals=2)]
    assert sse_ids == [m["stream_id"] for m in first + missed]


def test_a_client_that_goes_away_is_released_within_a_heartbeat(start_gateway):
    server = start_gateway({"SSE_HEARTBEAT_SECONDS": "0.5"})

    def subscribers() -> int:
        return requests.get(f"{server.url}/v1/health", timeout=10).json()["components"]["hub"]["subscribers"]

    assert subscribers() == 0
    response = requests.get(f"{server.url}/v1/session/{new_session()}/events", stream=True, timeout=(5, 10))
    assert next(response.iter_lines(decode_unicode=True)) == "retry: 3000"
    assert subscribers() == 1
    response.close()  # the client goes away without a word
    deadline = time.monotonic() + 5
    while subscribers() != 0:
        assert time.monotonic() < deadline, "the stream's subscription was never released"
        time.sleep(0.05)
