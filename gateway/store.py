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
        """Store one event of an existing session once; False when its `event_id` is known or the
        session does not exist."""
        ...

    def outbound_after(self, session_id: str, after: int | None) -> list[StoredEvent]:
        """The session's outbound events with an offset above `after` (all when None), by offset."""
        ...

    def history(self, session_id: str) -> list[StoredEvent]:
        """All retained events of the session in the order they happened."""
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

    def check(self) -> str:
        return "in-process"

    def close(self) -> None:
        pass
