"""The session store role: sessions and their event history, with an in-process adapter.

History holds inbound user events (recorded by the gateway after the bus acknowledged them) and
outbound events (recorded once per `event_id` by the history recorder, with their bus position, which
is what stream resume uses).
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol


@dataclass
class Session:
    session_id: str
    persona_id: str | None = None
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    log_guid: str = field(default_factory=lambda: str(uuid.uuid4()))
    expires_at: float | None = None
    # The highest outbound offset that is no longer in history (trimmed or reset), -1 if none.
    history_floor: int = -1


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    session_id: str
    event_id: str
    direction: str  # "inbound" or "outbound"
    event: dict[str, Any]
    timestamp: float
    partition: int | None = None
    offset: int | None = None


class Store(Protocol):
    kind: str

    def ensure_session(self, session_id: str, *, persona_id: str | None = None) -> Session:
        """Return the session, creating it when it does not exist yet."""
        ...

    def get_session(self, session_id: str) -> Session | None: ...

    def record_event(self, session_id: str, event: Mapping[str, Any], *, direction: str,
                     timestamp: float, partition: int | None = None, offset: int | None = None) -> bool:
        """Store one event of an existing session once; False when its `event_id` is known, the
        session does not exist, or `offset` is at or below the session's `history_floor`."""
        ...

    def outbound_after(self, session_id: str, after: int | None) -> list[StoredEvent]:
        """The session's outbound events with an offset above `after` (all when None), by offset."""
        ...

    def history(self, session_id: str) -> list[StoredEvent]:
        """All retained events of the session in the order they happened."""
        ...

    def delete_session(self, session_id: str) -> bool:
        """Remove the session and its history; False when it did not exist."""
        ...

    def reset_session(self, session_id: str, *, floor: int | None = None) -> Session | None:
        """Clear the history, give the log a new guid, and raise `history_floor` to `floor` (or to
        the highest offset that was in history). None when the session does not exist."""
        ...

    def set_expiry(self, session_id: str, expires_at: float | None) -> None: ...

    def expired_sessions(self, now: float) -> list[str]:
        """Ids of sessions whose `expires_at` is at or before `now`."""
        ...

    def recorder_position(self, topic: str, partition: int) -> int:
        """The offset below which the history recorder has stored every event of that partition."""
        ...

    def set_recorder_position(self, topic: str, partition: int, offset: int) -> None:
        """Record the recorder's progress (it never moves back)."""
        ...

    def check(self) -> str: ...

    def close(self) -> None: ...


class MemoryStore:
    """Sessions and history in this process's memory (the embedded mode)."""

    kind = "memory"

    def __init__(self, retention_per_session: int = 10_000) -> None:
        self.retention = retention_per_session
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}
        self._events: dict[str, list[StoredEvent]] = {}
        self._event_ids: set[str] = set()
        self._seq = 0
        self._recorder_positions: dict[tuple[str, int], int] = {}

    def ensure_session(self, session_id: str, *, persona_id: str | None = None) -> Session:
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                session = self._sessions[session_id] = Session(session_id, persona_id)
                self._events[session_id] = []
            elif persona_id is not None:
                session.persona_id = persona_id
            session.updated_at = time.time()
            return session

    def get_session(self, session_id: str) -> Session | None:
        with self._lock:
            return self._sessions.get(session_id)

    def record_event(self, session_id: str, event: Mapping[str, Any], *, direction: str,
                     timestamp: float, partition: int | None = None, offset: int | None = None) -> bool:
        event_id = str(event.get("event_id") or "")
        with self._lock:
            events = self._events.get(session_id)
            if events is None or not event_id or event_id in self._event_ids:
                return False
            if offset is not None and offset <= self._sessions[session_id].history_floor:
                return False  # cleared by a reset (or trimmed) already
            self._seq += 1
            self._event_ids.add(event_id)
            events.append(StoredEvent(self._seq, session_id, event_id, direction, dict(event),
                                      timestamp, partition, offset))
            if len(events) > self.retention:
                self._forget(self._sessions[session_id], events[: len(events) - self.retention])
                del events[: len(events) - self.retention]
            return True

    def _forget(self, session: Session, dropped: list[StoredEvent]) -> None:
        for stored in dropped:
            self._event_ids.discard(stored.event_id)
            if stored.offset is not None:
                session.history_floor = max(session.history_floor, stored.offset)

    def outbound_after(self, session_id: str, after: int | None) -> list[StoredEvent]:
        with self._lock:
            events = self._events.get(session_id, [])
            chosen = [e for e in events if e.offset is not None and (after is None or e.offset > after)]
        return sorted(chosen, key=lambda e: e.offset)

    def history(self, session_id: str) -> list[StoredEvent]:
        with self._lock:
            events = list(self._events.get(session_id, []))
        return sorted(events, key=lambda e: (e.timestamp, e.seq))

    def delete_session(self, session_id: str) -> bool:
        with self._lock:
            if self._sessions.pop(session_id, None) is None:
                return False
            for stored in self._events.pop(session_id, []):
                self._event_ids.discard(stored.event_id)
            return True

    def reset_session(self, session_id: str, *, floor: int | None = None) -> Session | None:
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            events = self._events[session_id]
            self._forget(session, events)
            events.clear()
            if floor is not None:
                session.history_floor = max(session.history_floor, floor)
            session.log_guid = str(uuid.uuid4())
            session.updated_at = time.time()
            return session

    def set_expiry(self, session_id: str, expires_at: float | None) -> None:
        with self._lock:
            session = self._sessions.get(session_id)
            if session is not None:
                session.expires_at = expires_at

    def expired_sessions(self, now: float) -> list[str]:
        with self._lock:
            return [s.session_id for s in self._sessions.values()
                    if s.expires_at is not None and s.expires_at <= now]

    def recorder_position(self, topic: str, partition: int) -> int:
        with self._lock:
            return self._recorder_positions.get((topic, partition), 0)

    def set_recorder_position(self, topic: str, partition: int, offset: int) -> None:
        with self._lock:
            key = (topic, partition)
            self._recorder_positions[key] = max(offset, self._recorder_positions.get(key, 0))

    def check(self) -> str:
        return "in-process"

    def close(self) -> None:
        pass
