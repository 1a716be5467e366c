"""The history recorder: stores every outbound event once, with its bus position.

It reads `conversation.outbound` in one consumer group shared by all gateway processes, so each
partition has exactly one writer at a time; the store is idempotent on `event_id`, so a redelivery
after a rebalance or restart changes nothing.
"""

from __future__ import annotations

from .background import Background, consume_group
from .bus import Bus, Record
from .store import Store


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


class HistoryRecorder(Background):
    """The consumer-group member of this process that stores outbound events as they arrive."""

    thread_name = "history-recorder"

    def __init__(self, bus: Bus, store: Store, topic: str, group: str) -> None:
        super().__init__()
        self.bus = bus
        self.store = store
        self.topic = topic
        self.group = group

    def run(self) -> None:
        consume_group(self.bus, self.topic, self.group, self._record, self._stopping, "history recorder")

    def _record(self, records: list[Record]) -> None:
        for record in records:
            record_outbound(self.store, record)
        self._note_progress(records)

    def _note_progress(self, records: list[Record]) -> None:
        """Tell replays how far history is complete, per partition (everything below is stored)."""
        newest: dict[int, int] = {}
        for record in records:
            newest[record.partition] = max(newest.get(record.partition, -1), record.offset)
        for partition, offset in newest.items():
            self.store.set_recorder_position(self.topic, partition, offset + 1)
