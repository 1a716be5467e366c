"""The outbound hub: one reader of `conversation.outbound` per process, fanning events out by session.

Subscribers (SSE and WebSocket streams, bridge waiters) each get a bounded queue. A subscriber that
lets its queue fill up is marked overflowed and dropped, so one slow client never holds up the others
or grows memory without limit.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Callable

from .background import RESTART_PAUSE_SECONDS, Background
from .bus import Bus, Record

log = logging.getLogger(__name__)


class Subscription:
    """One subscriber's view of a session's live events.

    `start` is the offset, in the session's partition, of the first event this subscription will
    receive live; anything before it must come from history or from the bus.
    """

    def __init__(self, hub: "OutboundHub", session_id: str, partition: int, start: int, size: int,
                 accept: Callable[[dict], bool] | None = None) -> None:
        self.hub = hub
        self.accept = accept
        self.session_id = session_id
        self.partition = partition
        self.start = start
        self.overflowed = False
        self.closed = False
        self._queue: queue.Queue[Record] = queue.Queue(maxsize=size)

    def offer(self, record: Record) -> None:
        if self.overflowed or (self.accept is not None and not self.accept(record.value)):
            return
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.overflowed = True
            self.hub.unsubscribe(self)
            log.warning("subscriber of session %s fell behind and was dropped", self.session_id)

    def get(self, timeout: float) -> Record | None:
        """The next live event, or None when `timeout` passes first."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        self.closed = True
        self.hub.unsubscribe(self)

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class OutboundHub(Background):
    """Reads every partition of the outbound topic from its end and dispatches by session id."""

    thread_name = "outbound-hub"

    def __init__(self, bus: Bus, topic: str, queue_size: int = 1000,
                 poll_timeout: float = 0.5) -> None:
        super().__init__()
        self.bus = bus
        self.topic = topic
        self.queue_size = queue_size
        self.poll_timeout = poll_timeout
        self._lock = threading.Lock()
        self._subscribers: dict[str, list[Subscription]] = {}
        self._positions: dict[int, int] = {}
        self._reader = None
        self._ready = threading.Event()

    def subscribe(self, session_id: str, accept: Callable[[dict], bool] | None = None,
                  timeout: float = 30.0) -> Subscription:
        """Subscribe to a session's live events (those `accept` takes, when given).

        Call before publishing whatever you wait for, or the answer can pass before you listen.
        """
        partition = self._partition_when_ready(session_id, timeout)
        with self._lock:
            sub = Subscription(self, session_id, partition, self._position_locked(partition),
                               self.queue_size, accept)
            self._subscribers.setdefault(session_id, []).append(sub)
        return sub

    def position(self, session_id: str, timeout: float = 30.0) -> int:
        """The offset of the next event the hub will read on the session's partition."""
        partition = self._partition_when_ready(session_id, timeout)
        with self._lock:
            return self._position_locked(partition)

    def _partition_when_ready(self, session_id: str, timeout: float) -> int:
        self.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("outbound hub did not start")
        return self.bus.partition_for(self.topic, session_id)

    def _position_locked(self, partition: int) -> int:
        position = self._positions.get(partition)
        return self._reader.position(partition) if position is None else position

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            subs = self._subscribers.get(sub.session_id)
            if subs and sub in subs:
                subs.remove(sub)
                if not subs:
                    del self._subscribers[sub.session_id]

    def subscriber_count(self) -> int:
        with self._lock:
            return sum(len(s) for s in self._subscribers.values())

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._read_forever()
            except Exception:  # the hub must outlive any bus hiccup
                log.exception("outbound hub reader failed; restarting it")
                self._stopping.wait(RESTART_PAUSE_SECONDS)

    def _read_forever(self) -> None:
        with self._lock:
            resume = dict(self._positions)
        # After a failure, carry on where the last reader stopped, so live subscribers miss nothing.
        reader = self.bus.tail(self.topic, positions=resume)
        try:
            with self._lock:
                self._reader = reader
            self._ready.set()
            while not self._stopping.is_set():
                for record in reader.poll(self.poll_timeout):
                    self._dispatch(record)
        finally:
            reader.close()

    def _dispatch(self, record: Record) -> None:
        with self._lock:
            # Position and subscriber list change together, so a new subscriber either gets this
            # record live or sees a start position past it (and replays it).
            self._positions[record.partition] = record.offset + 1
            subs = list(self._subscribers.get(record.key or "", ()))
        for sub in subs:
            sub.offer(record)
