"""The event bus role: one small interface, with an in-process adapter that behaves like Kafka.

Positions are Kafka's: a topic has partitions, a record has an offset in its partition, and the
key (the session id) picks the partition, so one session's events stay in order on one partition.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Protocol

from kafka.partitioner.default import murmur2


class BusUnavailable(Exception):
    """The bus did not acknowledge a publish in time; nothing was published."""


@dataclass(frozen=True)
class Record:
    """One event read from (or acknowledged by) the bus."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: dict[str, Any]
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp: float = field(default_factory=time.time)


class Reader(Protocol):
    """A cursor over one topic. `poll` returns what arrived (maybe nothing) within `timeout`."""

    def poll(self, timeout: float) -> list[Record]: ...

    def position(self, partition: int) -> int:
        """The next offset this reader will return from `partition`."""
        ...

    def commit(self) -> None:
        """Mark what `poll` returned as done (group readers; a no-op for tails)."""
        ...

    def close(self) -> None: ...


class Bus(Protocol):
    """What the gateway needs from a bus; `MemoryBus` here and `KafkaBus` for Kafka."""

    kind: str

    def publish(self, topic: str, value: Mapping[str, Any], *, key: str,
                headers: Iterable[tuple[str, bytes]] = ()) -> Record:
        """Publish and wait for the acknowledgement; raise `BusUnavailable` when none comes."""
        ...

    def partition_for(self, topic: str, key: str) -> int: ...

    def tail(self, topic: str, positions: Mapping[int, int] | None = None) -> Reader:
        """A reader of every partition of `topic` outside any consumer group, starting at `positions`
        (offset per partition, as far as still retained) and at the current end elsewhere."""
        ...

    def group_reader(self, topic: str, group: str) -> Reader:
        """A reader in consumer group `group`: each record goes to one member; progress is kept."""
        ...

    def read_range(self, topic: str, partition: int, start: int, end: int) -> list[Record]:
        """The retained records of one partition with `start <= offset < end`."""
        ...

    def check(self) -> str:
        """Raise if the bus is unusable; return a short description of it for health."""
        ...

    def close(self) -> None: ...


def partition_for_key(key: str, partitions: int) -> int:
    """Kafka's default partitioner (murmur2 of the key bytes), so both adapters place keys alike."""
    return (murmur2(key.encode("utf-8")) & 0x7FFFFFFF) % partitions


class _Partition:
    def __init__(self) -> None:
        self.first_offset = 0
        self.records: list[Record] = []

    @property
    def end(self) -> int:
        return self.first_offset + len(self.records)

    def slice(self, start: int, end: int) -> list[Record]:
        start = max(start, self.first_offset)
        end = min(end, self.end)
        if start >= end:
            return []
        return self.records[start - self.first_offset:end - self.first_offset]


class MemoryBus:
    """An in-process bus with partitions, offsets, retention and consumer groups, like Kafka.

    Thread-safe; under gevent's monkey patching its locks and conditions are cooperative.
    """

    kind = "memory"

    def __init__(self, partitions: int = 4, retention: int = 100_000) -> None:
        self.partitions = partitions
        self.retention = retention
        self._topics: dict[str, list[_Partition]] = {}
        self._groups: dict[tuple[str, str], dict[int, int]] = {}
        self._changed = threading.Condition()

    def _topic(self, topic: str) -> list[_Partition]:
        parts = self._topics.get(topic)
        if parts is None:
            parts = self._topics[topic] = [_Partition() for _ in range(self.partitions)]
        return parts

    def partition_for(self, topic: str, key: str) -> int:
        return partition_for_key(key, self.partitions)

    def publish(self, topic: str, value: Mapping[str, Any], *, key: str,
                headers: Iterable[tuple[str, bytes]] = ()) -> Record:
        partition = self.partition_for(topic, key)
        with self._changed:
            part = self._topic(topic)[partition]
            record = Record(topic, partition, part.end, key, dict(value), tuple(headers))
            part.records.append(record)
            overflow = len(part.records) - self.retention
            if overflow > 0:
                del part.records[:overflow]
                part.first_offset += overflow
            self._changed.notify_all()
        return record

    def _poll(self, topic: str, cursor: dict[int, int], timeout: float, limit: int = 500) -> list[Record]:
        """Records after `cursor` (advanced in place), waiting up to `timeout` for the first."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                out: list[Record] = []
                for partition, part in enumerate(self._topic(topic)):
                    start = max(cursor.get(partition, 0), part.first_offset)
                    batch = part.slice(start, start + limit - len(out))
                    if batch:
                        out.extend(batch)
                        cursor[partition] = batch[-1].offset + 1
                    if len(out) >= limit:
                        break
                if out:
                    return out
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._changed.wait(remaining)

    def tail(self, topic: str, positions: Mapping[int, int] | None = None) -> Reader:
        positions = positions or {}
        with self._changed:
            cursor = {p: min(positions.get(p, part.end), part.end) for p, part in enumerate(self._topic(topic))}
        return _MemoryReader(self, topic, cursor)

    def group_reader(self, topic: str, group: str) -> Reader:
        with self._changed:
            # A new group starts at the beginning, like auto_offset_reset="earliest".
            cursor = self._groups.setdefault((group, topic), {})
        return _MemoryReader(self, topic, cursor)

    def read_range(self, topic: str, partition: int, start: int, end: int) -> list[Record]:
        with self._changed:
            return list(self._topic(topic)[partition].slice(start, end))

    def check(self) -> str:
        return "in-process"

    def close(self) -> None:
        with self._changed:
            self._changed.notify_all()


class _MemoryReader:
    def __init__(self, bus: MemoryBus, topic: str, cursor: dict[int, int]) -> None:
        self._bus = bus
        self._topic = topic
        self._cursor = cursor

    def poll(self, timeout: float) -> list[Record]:
        return self._bus._poll(self._topic, self._cursor, timeout)

    def position(self, partition: int) -> int:
        with self._bus._changed:
            return self._cursor.get(partition, 0)

    def commit(self) -> None:
        pass  # the shared cursor already moved when poll returned

    def close(self) -> None:
        pass
