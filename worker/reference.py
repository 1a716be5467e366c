"""Answers each user message on `conversation.inbound` with a streamed echo on `conversation.outbound`.

The reply is deterministic (`WORKER_REPLY_PREFIX` + the message), streamed as cumulative chunks with
`metadata.status = "streaming"` and a `stream_index`, then one `"completed"` event, in the 2025-10
worker generation's format. Each chunk takes `WORKER_REPLY_DELAY_MS`, so streaming, timeouts and
concurrency can be seen. Control events are consumed and not answered.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Mapping

from gateway.background import Background, consume_group
from gateway.bus import Bus, Record
from gateway.events import STATUS_COMPLETED, STATUS_STREAMING, new_id, wire_headers

log = logging.getLogger(__name__)

# Sessions share one of this many locks; two sessions rarely wait for each other.
SESSION_LOCK_STRIPES = 1024

def _chunks(text: str, count: int) -> list[str]:
    """Cumulative prefixes of `text` ending at word boundaries, at most `count` of them, last = text."""
    words = text.split(" ")
    count = max(1, min(count, len(words)))
    cuts = [round(len(words) * (i + 1) / count) for i in range(count)]
    return [" ".join(words[:cut]) for cut in cuts]


def reply_events(inbound: Mapping[str, Any], *, prefix: str = "Echo: ", chunks: int = 3) -> list[dict[str, Any]]:
    """The outbound events answering one inbound user message: streaming chunks, then completed."""
    text = f"{prefix}{inbound.get('message', '')}"
    parts = _chunks(text, chunks)
    events = []
    for index, part in enumerate(parts):
        final = index == len(parts) - 1
        metadata = dict(inbound.get("metadata") or {})
        metadata.update({"source": "reference_worker",
                         "status": STATUS_COMPLETED if final else STATUS_STREAMING})
        if not final:
            metadata["stream_index"] = index
        events.append({
            "event_id": new_id(),
            "session_id": inbound["session_id"],
            "persona_id": inbound.get("persona_id"),
            "role": "assistant",
            "message": part,
            "metadata": metadata,
        })
    return events


def is_user_message(event: Mapping[str, Any]) -> bool:
    return event.get("role") == "user" and not event.get("type") and bool(event.get("session_id"))


class ReferenceWorker(Background):
    """Consumes inbound events in group `conversation-worker` and publishes the replies.

    Messages of one session are answered in order; different sessions are answered concurrently.
    """

    def __init__(self, bus: Bus, *, inbound_topic: str, outbound_topic: str, prefix: str = "Echo: ",
                 chunks: int = 3, delay_ms: int = 20, concurrency: int = 64,
                 group: str = "conversation-worker") -> None:
        super().__init__()
        self.bus = bus
        self.group = group
        self.inbound_topic = inbound_topic
        self.outbound_topic = outbound_topic
        self.prefix = prefix
        self.chunks = chunks
        self.delay = delay_ms / 1000.0
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="reference-worker")
        # Striped locks keep each session's replies in order with bounded memory (a lock per session
        # would grow with every session ever seen).
        self._session_locks = [threading.Lock() for _ in range(SESSION_LOCK_STRIPES)]

    @classmethod
    def from_settings(cls, bus: Bus, settings) -> "ReferenceWorker":
        """A worker configured by the gateway's `Settings` (topics and `WORKER_*` settings)."""
        return cls(bus, inbound_topic=settings.conversation_inbound, outbound_topic=settings.conversation_outbound,
                   prefix=settings.worker_reply_prefix, chunks=settings.worker_reply_chunks,
                   delay_ms=settings.worker_reply_delay_ms, group=settings.worker_consumer_group)

    def run(self) -> None:
        """Consume until stopped (in the foreground for `python -m worker`, else on `start()`'s thread)."""
        consume_group(self.bus, self.inbound_topic, self.group, self._dispatch, self._stopping, "reference worker")

    def _dispatch(self, records: list[Record]) -> None:
        for record in records:
            self._pool.submit(self._answer_safely, record)

    def _answer_safely(self, record: Record) -> None:
        try:
            self.answer(record.value)
        except Exception:
            log.exception("reference worker could not answer event %s", record.value.get("event_id"))

    def answer(self, inbound: Mapping[str, Any]) -> None:
        if not is_user_message(inbound):
            log.info("reference worker acknowledged %s event for session %s",
                     inbound.get("type") or inbound.get("role"), inbound.get("session_id"))
            return
        session_id = inbound["session_id"]
        with self._session_locks[zlib.crc32(session_id.encode()) % len(self._session_locks)]:
            for event in reply_events(inbound, prefix=self.prefix, chunks=self.chunks):
                if self.delay:
                    time.sleep(self.delay)
                self.bus.publish(self.outbound_topic, event, key=session_id, headers=wire_headers(event))
