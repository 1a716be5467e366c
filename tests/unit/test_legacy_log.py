"""The Agent Zero log projection (`gateway.legacy_log`): events in, log items and progress out."""

from __future__ import annotations

import itertools

from gateway.legacy_log import WAITING, log_body, project_log
from gateway.store import StoredEvent

_seq = itertools.count(1)


def stored(event: dict, direction: str = "outbound", at: float | None = None) -> StoredEvent:
    seq = next(_seq)
    event = {"event_id": f"e{seq}", "session_id": "s", **event}
    return StoredEvent(seq, "s", event["event_id"], direction, event, 1000.0 + seq if at is None else at)


def user(message: str, attachments: list[str] | None = None) -> StoredEvent:
    return stored({"role": "user", "message": message, "attachments": attachments or [],
                   "metadata": {"source": "legacy_api"}}, direction="inbound")


def chunk(text: str, index: int, **metadata) -> StoredEvent:
    return stored({"role": "assistant", "message": text,
                   "metadata": {"source": "slm", "status": "streaming", "stream_index": index, **metadata}})


def completed(text: str, **metadata) -> StoredEvent:
    return stored({"role": "assistant", "message": text, "metadata": {"source": "slm", "status": "completed",
                                                                        **metadata}})


def test_user_message_is_a_user_item_with_attachment_names():
    event = user("hello", ["attachments/s/report.pdf", "/a0/tmp/uploads/b.png", "plain-ref"])
    log = project_log([event])
    assert log.items == [{
        "no": 0, "id": event.event_id, "type": "user", "heading": "User message", "content": "hello",
        "temp": False, "kvps": {"attachments": ["report.pdf", "b.png", "plain-ref"]},
        "timestamp": event.timestamp, "agentno": 0,
    }]
    assert list(log.items[0]) == ["no", "id", "type", "heading", "content", "temp", "kvps", "timestamp", "agentno"]
    assert (log.active, log.progress) == (True, "User message")


def test_streaming_chunks_update_one_pending_response_item_in_place():
    first = chunk("Echo:", 0)
    log = project_log([user("hi there"), first, chunk("Echo: hi", 1)])
    assert len(log.items) == 2
    response = log.items[1]
    assert (response["type"], response["heading"], response["content"]) == ("response", "Response", "Echo: hi")
    assert response["kvps"] == {"source": "slm", "status": "streaming"}
    assert response["id"] == first.event_id
    assert (log.active, log.progress) == (True, "Response")


def test_completed_reply_finalizes_the_streamed_item_and_ends_the_turn():
    first = chunk("Echo:", 0)
    final = completed("Echo: hi there")
    log = project_log([user("hi there"), first, chunk("Echo: hi", 1), final])
    assert [i["type"] for i in log.items] == ["user", "response"]
    response = log.items[1]
    assert response["content"] == "Echo: hi there"
    assert response["kvps"] == {"source": "slm", "status": "completed"}
    assert (response["id"], response["timestamp"]) == (final.event_id, final.timestamp)
    assert (log.active, log.progress) == (False, WAITING)


def test_finished_log_is_the_same_whether_or_not_the_chunks_were_stored_yet():
    # The bridge stores the reply at once; the recorder may store the earlier chunks after it.
    question, first, final = user("q"), chunk("Echo:", 0), completed("Echo: q")
    assert project_log([question, final]).items == project_log([question, first, final]).items


def test_completed_reply_without_chunks_is_its_own_item():
    final = completed("done", request_event_id="r1", tenant="t")
    log = project_log([user("go"), final])
    assert log.items[1] == {"no": 1, "id": final.event_id, "type": "response", "heading": "Response",
                            "content": "done", "temp": False, "kvps": {"source": "slm", "status": "completed"},
                            "timestamp": final.timestamp, "agentno": 0}


def test_a_late_older_chunk_does_not_roll_the_text_back():
    log = project_log([user("x"), chunk("a b", 1), chunk("a", 0)])
    assert log.items[1]["content"] == "a b"


def test_sa01_v1_stream_and_final_types():
    events = [
        user("q"),
        stored({"type": "assistant.thinking", "version": "sa01-v1", "role": "assistant", "message": "hmm",
                "metadata": {}}),
        stored({"type": "assistant.stream", "version": "sa01-v1", "role": "assistant", "message": "An",
                "metadata": {"stream_index": 0}}),
        stored({"type": "assistant.final", "version": "sa01-v1", "role": "assistant", "message": "Answer",
                "metadata": {"source": "slm"}}),
    ]
    log = project_log(events)
    assert [(i["type"], i["content"], i["kvps"]) for i in log.items] == [
        ("user", "q", {"attachments": []}),
        ("response", "Answer", {"source": "slm", "status": "completed"}),
    ]
    assert log.active is False


def test_tool_start_and_result_share_one_item():
    events = [
        user("search it"),
        stored({"type": "tool.start", "version": "sa01-v1", "role": "tool", "message": "",
                "metadata": {"tool_name": "search", "request_id": "t1"}}),
        stored({"type": "tool.result", "version": "sa01-v1", "role": "tool", "message": "3 hits",
                "metadata": {"tool_name": "search", "request_id": "t1", "status": "success"}}),
    ]
    log = project_log(events)
    assert [(i["type"], i["heading"], i["content"], i["kvps"]) for i in log.items[1:]] == [
        ("tool", "Tool: search", "3 hits", {"status": "success"}),
    ]
    assert log.items[1]["id"] == events[1].event_id
    # A tool call does not answer the user: the turn is still open.
    assert (log.active, log.progress) == (True, "Tool: search")


def test_tool_start_alone_is_running_and_2025_tool_results_are_tools_too():
    log = project_log([
        stored({"type": "tool.start", "role": "tool", "message": "", "metadata": {"tool_name": "fetch"}}),
        stored({"role": "tool", "message": "blocked by policy", "metadata": {"tool_name": "shell", "status": "blocked"}}),
    ])
    assert [(i["heading"], i["kvps"]) for i in log.items] == [
        ("Tool: fetch", {"status": "running"}), ("Tool: shell", {"status": "blocked"})]


def test_error_and_policy_denial_items_end_the_turn():
    error = stored({"role": "assistant", "message": "model crashed", "metadata": {"source": "slm", "status": "error"}})
    log = project_log([user("a"), chunk("partial", 0), error])
    assert [(i["type"], i["heading"], i["content"]) for i in log.items] == [
        ("user", "User message", "a"), ("response", "Response", "partial"), ("error", "Error", "model crashed")]
    assert log.items[2]["kvps"] == {"source": "slm", "status": "error"}
    assert (log.active, log.progress) == (False, WAITING)

    denied = stored({"role": "assistant", "message": "not allowed", "metadata": {"source": "policy"}})
    log = project_log([user("b"), denied])
    assert [(i["type"], i["heading"], i["content"]) for i in log.items[1:]] == [("warning", "Blocked", "not allowed")]
    assert log.active is False


def test_blocked_status_and_error_type_are_recognised():
    log = project_log([
        stored({"role": "assistant", "message": "over budget", "metadata": {"source": "budget", "status": "blocked"}}),
        stored({"type": "assistant.error", "role": "assistant", "message": "boom", "metadata": {}}),
    ])
    assert [(i["type"], i["heading"]) for i in log.items] == [("warning", "Blocked"), ("error", "Error")]


def test_control_events_and_unknown_types_are_not_items():
    log = project_log([
        stored({"type": "session.reset", "role": "system", "message": "", "metadata": {}}, direction="inbound"),
        stored({"type": "custom.thing", "role": "assistant", "message": "x", "metadata": {}}),
        stored({"role": "assistant", "message": "no status", "metadata": {}}),
    ])
    assert log.items == [] and log.progress == WAITING


def test_second_turn_gets_its_own_response_item():
    log = project_log([user("1"), chunk("E", 0), completed("E1"), user("2"), chunk("F", 0)])
    assert [(i["no"], i["type"], i["content"]) for i in log.items] == [
        (0, "user", "1"), (1, "response", "E1"), (2, "user", "2"), (3, "response", "F")]
    assert log.active is True


def test_body_has_the_newest_items_oldest_first_in_agent_zero_key_order():
    events = [user(str(n)) if n % 2 == 0 else completed(f"r{n}") for n in range(6)]
    body = log_body("ctx", "guid-1", project_log(events), 4)
    assert list(body) == ["context_id", "log"]
    assert list(body["log"]) == ["guid", "total_items", "returned_items", "start_position", "progress",
                                 "progress_active", "items"]
    assert {k: v for k, v in body["log"].items() if k != "items"} == {
        "guid": "guid-1", "total_items": 6, "returned_items": 4, "start_position": 2,
        "progress": WAITING, "progress_active": False}
    assert [i["no"] for i in body["log"]["items"]] == [2, 3, 4, 5]
    assert body["context_id"] == "ctx"


def test_length_beyond_the_log_returns_everything():
    body = log_body("ctx", "g", project_log([user("only")]), 100)
    assert (body["log"]["total_items"], body["log"]["returned_items"], body["log"]["start_position"]) == (1, 1, 0)
    assert (body["log"]["progress"], body["log"]["progress_active"]) == ("User message", True)
