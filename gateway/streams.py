"""A session's outbound events as one ordered stream: replay after a position, then live.

Shared by SSE and WebSocket. An event's stream id is its offset in the session's partition, which
every gateway process agrees on. Replay reads the stored history first and then the bus for what the
recorder has not stored yet; the live part starts exactly where replay ends, so nothing is sent twice
or skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from .hub import Subscription
from .runtime import Runtime

# How far back on the bus a replay looks for events the recorder has not stored yet.
BUS_REPLAY_LIMIT = 5000


@dataclass(frozen=True)
class StreamItem:
    """One thing to send: an event, a `reset` notice, or a heartbeat tick."""

    kind: str  # "event", "reset" or "heartbeat"
    id: int | None = None
    event: dict[str, Any] | None = None
    reason: str | None = None


HEARTBEAT = StreamItem("heartbeat")


def parse_cursor(raw: str | None) -> tuple[int | None, bool]:
    """Read a client's last event id: (offset or None, whether it was malformed)."""
    if raw is None or raw.strip() == "":
        return None, False
    try:
        value = int(raw.strip())
    except ValueError:
        return None, True
    return (value, False) if value >= 0 else (None, True)


def session_stream(runtime: Runtime, session_id: str, *, after: int | None = None,
                   from_start: bool = False, malformed_cursor: bool = False,
                   heartbeat: float = 15.0) -> Iterator[StreamItem]:
    """Yield the session's events after `after` (or all retained with `from_start`), then live ones.

    Ends when the subscriber falls too far behind (the caller then closes the connection). The live
    subscription is made at once (so `BusUnavailable` is raised here, before anything is streamed) and
    released when the returned generator is closed.
    """
    sub = runtime.hub.subscribe(session_id)
    return _stream(runtime, sub, session_id, after=after, from_start=from_start,
                   malformed_cursor=malformed_cursor, heartbeat=heartbeat)


def _stream(runtime: Runtime, sub: Subscription, session_id: str, *, after: int | None, from_start: bool,
            malformed_cursor: bool, heartbeat: float) -> Iterator[StreamItem]:
    try:
        last: int | None = None
        replay_from: int | None = None  # replay events with offset > replay_from; None: no replay
        session = runtime.store.get_session(session_id)
        floor = session.history_floor if session else -1
        if malformed_cursor:
            yield StreamItem("reset", reason="malformed last event id")
        elif after is not None and (after < floor or after >= sub.start):
            yield StreamItem("reset", reason="position no longer retained")
        elif after is not None:
            replay_from = after
        if from_start:
            replay_from = -1 if replay_from is None else replay_from
        if replay_from is not None:
            for item in _replay(runtime, sub.partition, sub.start, session_id, replay_from, floor):
                last = item.id
                yield item
        while not sub.overflowed:
            record = sub.get(heartbeat)
            if record is None:
                yield HEARTBEAT
            elif last is None or record.offset > last:
                last = record.offset
                yield _item(record.offset, record.value)
    finally:
        sub.close()


def _item(offset: int, event: dict[str, Any]) -> StreamItem:
    return StreamItem("event", id=offset, event=event)


def _replay(runtime: Runtime, partition: int, live_start: int, session_id: str, after: int,
            floor: int) -> Iterator[StreamItem]:
    """Events of the session with `after < offset < live_start`, in order, each once.

    History is complete below the recorder's position; above it (recorder lag) the bus is read, and
    whatever history already has there (the bridge stores the replies it waited for) is merged in.
    """
    topic = runtime.settings.conversation_outbound
    events = {stored.offset: stored.event for stored in runtime.store.outbound_after(session_id, after)
              if stored.partition == partition and stored.offset < live_start}
    bus_start = max(after + 1, floor + 1, runtime.store.recorder_position(topic, partition),
                    live_start - BUS_REPLAY_LIMIT)
    if bus_start < live_start:
        for record in runtime.bus.read_range(topic, partition, bus_start, live_start):
            if record.key == session_id:
                events[record.offset] = record.value
    for offset in sorted(events):
        yield _item(offset, events[offset])
