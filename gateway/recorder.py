"""The history recorder: stores every outbound event once, with its bus position.

It reads `conversation.outbound` in one consumer group shared by all gateway processes, so each
partition has exactly one writer at a time; the store is idempotent on `event_id`, so a redelivery
after a rebalance or restart changes nothing.
"""

from __future__ import annotations

import logging
import threading

from .bus import Bus, Record
from .store import Store

log = logging.getLogger(__name__)

def record_outbound(store: Store, record: Record) -> bool:
    """Store one outbound record in its session's history; False if known or the session is unknown.

    Events of sessions this gateway never saw (or has terminated) are not kept: a late reply must not
    bring a deleted session back.
    """
    session_id = record.key or str(record.value.get("session_id") or "")
    if not session_id:
        return False
    return store.record_event(session_id, record.value, direction="outbound", timestamp=record.timestamp,
                              partition=record.partition, offset=record.offset)


class HistoryRecorder:
    def __init__(self, bus: Bus, store: Store, topic: str, group: str) -> None:
        self.bus = bus
        self.store = store
        self.topic = topic
        self.group = group
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="history-recorder", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()

    def _note_progress(self, records: list[Record]) -> None:
        """Tell replays how far history is complete, per partition (everything below is stored)."""
        newest: dict[int, int] = {}
        for record in records:
            newest[record.partition] = max(newest.get(record.partition, -1), record.offset)
        for partition, offset in newest.items():
            self.store.set_recorder_position(self.topic, partition, offset + 1)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                reader = self.bus.group_reader(self.topic, self.group)
                try:
                    while not self._stopping.is_set():
                        records = reader.poll(0.5)
                        for record in records:
                            record_outbound(self.store, record)
                        if records:
                            reader.commit()
                            self._note_progress(records)
                finally:
                    reader.close()
            except Exception:
                log.exception("history recorder failed; restarting it")
                self._stopping.wait(1.0)
