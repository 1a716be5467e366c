"""Tool requests parked by policy (the requeue): listing them, and resolving or deleting one.

The tool executor parks a blocked `tool.requests` event as `<prefix>:<event_id>` (the request's JSON
plus `timestamp`) and adds `<event_id>` to the set `<prefix>:keys`. `RedisRequeue` reads and writes
exactly those keys; `MemoryRequeue` is the same for the embedded mode.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, Iterable, Mapping, Protocol

import redis

from .bus import Bus, BusUnavailable
from .events import wire_headers

log = logging.getLogger(__name__)

__all__ = ["Requeue", "RedisRequeue", "MemoryRequeue", "RequeueNotFound", "RequeueEntryCorrupt",
           "RequeueUnavailable", "BusUnavailable", "resolve", "republished_request"]


class RequeueNotFound(LookupError):
    """No parked request has this id."""


class RequeueEntryCorrupt(ValueError):
    """The parked entry is not a JSON object, so it cannot be republished."""


class RequeueUnavailable(Exception):
    """The store of parked requests (Redis) did not answer."""


def decode_entry(requeue_id: str, text: str) -> dict[str, Any]:
    """One parked entry as a dict; raises `RequeueEntryCorrupt` when it is not a JSON object."""
    try:
        entry = json.loads(text)
    except ValueError:
        raise RequeueEntryCorrupt(f"requeue entry {requeue_id} is not valid JSON") from None
    if not isinstance(entry, dict):
        raise RequeueEntryCorrupt(f"requeue entry {requeue_id} is not a JSON object")
    return entry


def _newest_first(entries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    def timestamp(entry: dict[str, Any]) -> float:
        value = entry.get("timestamp")
        # A writer that left the timestamp out (or wrote text) sorts last instead of failing the list.
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0

    return sorted(entries, key=timestamp, reverse=True)


def _listed(pairs: Iterable[tuple[str, str | None]]) -> list[dict[str, Any]]:
    """Entries (request fields + `timestamp` + `requeue_id`) from (id, stored text) pairs, newest first."""
    entries = []
    for requeue_id, text in pairs:
        if text is None:
            continue  # removed between reading the set and reading the entry
        try:
            entry = decode_entry(requeue_id, text)
        except RequeueEntryCorrupt as exc:
            # One bad entry must not hide the others from the operator.
            log.warning("skipping a parked request: %s", exc)
            continue
        entries.append({**entry, "requeue_id": requeue_id})
    return _newest_first(entries)


class Requeue(Protocol):
    kind: str

    def entries(self) -> list[dict[str, Any]]:
        """Every readable parked request, newest first, each with its `requeue_id`."""
        ...

    def get(self, requeue_id: str) -> dict[str, Any]:
        """The stored request (with `timestamp`); raises `RequeueNotFound` or `RequeueEntryCorrupt`."""
        ...

    def remove(self, requeue_id: str) -> bool:
        """Drop the entry and its set member; False when neither existed."""
        ...

    def park(self, request: Mapping[str, Any], *, timestamp: float | None = None) -> str:
        """Park a request as the tool executor does (id = its `event_id`); return the id."""
        ...


class RedisRequeue:
    """Parked requests in Redis, under the tool executor's keys."""

    kind = "redis"

    def __init__(self, cache: Any, prefix: str) -> None:
        # A RedisCache: its client decodes replies to str.
        self.cache = cache
        self.prefix = prefix
        self.keyset = f"{prefix}:keys"

    def key(self, requeue_id: str) -> str:
        return f"{self.prefix}:{requeue_id}"

    def entries(self) -> list[dict[str, Any]]:
        client = self.cache.client
        try:
            ids = sorted(client.smembers(self.keyset))
            texts = client.mget([self.key(i) for i in ids]) if ids else []
        except redis.RedisError as exc:
            raise RequeueUnavailable(str(exc)) from exc
        return _listed(zip(ids, texts))

    def get(self, requeue_id: str) -> dict[str, Any]:
        try:
            text = self.cache.client.get(self.key(requeue_id))
        except redis.ResponseError:  # WRONGTYPE: something else wrote this key
            raise RequeueEntryCorrupt(f"requeue entry {requeue_id} is not a string value") from None
        except redis.RedisError as exc:
            raise RequeueUnavailable(str(exc)) from exc
        if text is None:
            raise RequeueNotFound(requeue_id)
        return decode_entry(requeue_id, text)

    def remove(self, requeue_id: str) -> bool:
        try:
            with self.cache.client.pipeline(transaction=True) as pipe:
                deleted, unlisted = pipe.delete(self.key(requeue_id)).srem(self.keyset, requeue_id).execute()
        except redis.RedisError as exc:
            raise RequeueUnavailable(str(exc)) from exc
        return bool(deleted or unlisted)

    def park(self, request: Mapping[str, Any], *, timestamp: float | None = None) -> str:
        requeue_id = str(request["event_id"])
        payload = {**request, "timestamp": time.time() if timestamp is None else timestamp}
        # The executor's order: the entry first, then the member that makes it visible.
        with self.cache.client.pipeline(transaction=True) as pipe:
            pipe.set(self.key(requeue_id), json.dumps(payload, ensure_ascii=False)).sadd(self.keyset, requeue_id)
            pipe.execute()
        return requeue_id


class MemoryRequeue:
    """Parked requests in this process's memory (the embedded mode), kept as JSON text like Redis."""

    kind = "memory"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, str] = {}

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            pairs = list(self._items.items())
        return _listed(pairs)

    def get(self, requeue_id: str) -> dict[str, Any]:
        with self._lock:
            text = self._items.get(requeue_id)
        if text is None:
            raise RequeueNotFound(requeue_id)
        return decode_entry(requeue_id, text)

    def remove(self, requeue_id: str) -> bool:
        with self._lock:
            return self._items.pop(requeue_id, None) is not None

    def park(self, request: Mapping[str, Any], *, timestamp: float | None = None) -> str:
        requeue_id = str(request["event_id"])
        payload = {**request, "timestamp": time.time() if timestamp is None else timestamp}
        with self._lock:
            self._items[requeue_id] = json.dumps(payload, ensure_ascii=False)
        return requeue_id


def build_requeue(cache: Any, prefix: str) -> Requeue:
    """The requeue that lives where the cache does: Redis, or this process's memory."""
    if getattr(cache, "kind", None) == "redis":
        return RedisRequeue(cache, prefix)
    return MemoryRequeue()


def republished_request(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The parked request as it goes back to `tool.requests`: without the parking `timestamp`, and
    marked `metadata.requeue_override = true` so the executor's policy check lets it through."""
    request = {k: v for k, v in entry.items() if k not in ("timestamp", "requeue_id")}
    metadata = request.get("metadata")
    request["metadata"] = {**(metadata if isinstance(metadata, Mapping) else {}), "requeue_override": True}
    return request


def resolve(requeue: Requeue, bus: Bus, topic: str, requeue_id: str, *, publish: bool = True) -> None:
    """Resolve a parked request: republish it to `topic` (when `publish`), then remove it.

    The entry is removed only after the bus acknowledged the publish, so a failed publish
    (`BusUnavailable`) leaves it parked for another try.
    """
    if not publish:
        if not requeue.remove(requeue_id):
            raise RequeueNotFound(requeue_id)
        return
    request = republished_request(requeue.get(requeue_id))
    # The executor parks a request without an event_id under a fresh id; that id names it on the wire.
    if not request.get("event_id"):
        request["event_id"] = requeue_id
    metadata = request["metadata"]
    tenant = metadata.get("tenant") if isinstance(metadata.get("tenant"), str) else None
    # The key picks the partition; the session id keeps one session's requests in order.
    key = str(request.get("session_id") or requeue_id)
    bus.publish(topic, request, key=key, headers=wire_headers(request, tenant))
    log.info("requeued tool request %s republished to %s", requeue_id, topic)
    requeue.remove(requeue_id)
