"""The outbound hub and the resumable session stream, on the in-process adapters."""

from __future__ import annotations

import time

import pytest

from gateway.runtime import Runtime
from gateway.settings import load_settings


@pytest.fixture
def runtime(request):
    queue_size = getattr(request, "param", 100)
    # The hub starts on the first subscription, at the end of the topic: what tests publish before
    # subscribing is history to replay, what they publish after is live.
    rt = Runtime.from_settings(load_settings({}, run_worker_in_process=False, stream_queue_size=queue_size))
    yield rt
    rt.stop()


def reply(runtime, session_id, text, status="completed"):
    event = {"event_id": f"{session_id}-{text}", "session_id": session_id, "role": "assistant",
             "message": text, "metadata": {"status": status}}
    return runtime.bus.publish(runtime.settings.conversation_outbound, event, key=session_id)


def test_subscribers_get_only_their_sessions_events(runtime):
    with runtime.hub.subscribe("a") as sub_a, runtime.hub.subscribe("b") as sub_b:
        reply(runtime, "a", "for a")
        assert sub_a.get(1).value["message"] == "for a"
        assert sub_b.get(0.05) is None


def test_accept_filter_keeps_only_wanted_events(runtime):
    with runtime.hub.subscribe("a", accept=lambda e: e["metadata"]["status"] == "completed") as sub:
        reply(runtime, "a", "chunk", status="streaming")
        reply(runtime, "a", "done")
        assert sub.get(1).value["message"] == "done"


@pytest.mark.parametrize("runtime", [3], indirect=True)
def test_a_subscriber_that_falls_behind_is_dropped_not_buffered(runtime):
    sub = runtime.hub.subscribe("a")
    for i in range(5):
        reply(runtime, "a", f"m{i}")
    deadline = time.monotonic() + 5
    while not sub.overflowed and time.monotonic() < deadline:
        time.sleep(0.01)  # the hub dispatches on its own thread
    assert sub.overflowed
    assert runtime.hub.subscriber_count() == 0


def stream_events(runtime, session_id, **kwargs):
    from gateway.streams import session_stream

    items = session_stream(runtime, session_id, heartbeat=0.05, **kwargs)
    out = []
    for item in items:
        if item.kind == "heartbeat":
            break
        out.append(item)
    items.close()
    return out


def test_replay_reads_the_bus_for_what_the_recorder_has_not_stored(runtime):
    runtime.store.ensure_session("s")
    records = [reply(runtime, "s", f"m{i}") for i in range(3)]
    # The recorder is not running: history is empty, so replay must come from the bus.
    items = stream_events(runtime, "s", after=records[0].offset)
    assert [i.id for i in items] == [r.offset for r in records[1:]]


def test_replay_prefers_history_and_does_not_repeat(runtime):
    from gateway.recorder import record_outbound

    runtime.store.ensure_session("s")
    records = [reply(runtime, "s", f"m{i}") for i in range(4)]
    for record in records[:2]:
        record_outbound(runtime.store, record)
    items = stream_events(runtime, "s", from_start=True)
    assert [i.id for i in items] == [r.offset for r in records]


def test_position_below_a_reset_is_announced(runtime):
    runtime.store.ensure_session("s")
    records = [reply(runtime, "s", f"m{i}") for i in range(2)]
    runtime.store.reset_session("s", floor=records[-1].offset)
    items = stream_events(runtime, "s", after=records[0].offset - 1 if records[0].offset else None,
                          malformed_cursor=records[0].offset == 0)
    assert items[0].kind == "reset"
