"""The requeue stores, in-process and Redis alike, and resolve's publish-then-remove order."""

from __future__ import annotations

import json
import os
import uuid

import pytest

from gateway.bus import BusUnavailable, MemoryBus
from gateway.redis_cache import RedisCache
from gateway.requeue import (MemoryRequeue, RedisRequeue, RequeueEntryCorrupt, RequeueNotFound,
                             RequeueUnavailable, resolve)
from gateway.settings import load_settings

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
TOPIC = "tool.requests"


@pytest.fixture
def prefix():
    return f"test:requeue:{uuid.uuid4().hex}"


@pytest.fixture(params=["memory", "redis"])
def requeue(request, prefix):
    if request.param == "memory":
        yield MemoryRequeue()
        return
    cache = RedisCache(load_settings({"REDIS_URL": REDIS_URL}))
    yield RedisRequeue(cache, prefix)
    for key in cache.client.scan_iter(match=f"{prefix}:*"):
        cache.client.delete(key)
    cache.close()


def tool_request(**fields):
    return {"event_id": str(uuid.uuid4()), "session_id": "s-1", "persona_id": None, "tool_name": "shell",
            "args": {"cmd": "ls"}, "metadata": {"tenant": "acme"}, **fields}


def test_entries_are_listed_newest_first_with_their_ids(requeue):
    old = tool_request()
    new = tool_request(tool_name="web")
    requeue.park(old, timestamp=100.0)
    requeue.park(new, timestamp=200.0)
    assert requeue.entries() == [
        {**new, "timestamp": 200.0, "requeue_id": new["event_id"]},
        {**old, "timestamp": 100.0, "requeue_id": old["event_id"]},
    ]
    assert requeue.get(old["event_id"]) == {**old, "timestamp": 100.0}


def test_remove_drops_the_entry_once(requeue):
    request = tool_request()
    requeue.park(request)
    assert requeue.remove(request["event_id"]) is True
    assert requeue.remove(request["event_id"]) is False
    assert requeue.entries() == []
    with pytest.raises(RequeueNotFound):
        requeue.get(request["event_id"])


def test_resolve_publishes_with_the_override_then_removes(requeue):
    bus = MemoryBus(partitions=2)
    tail = bus.tail(TOPIC)
    request = tool_request(trace_context={"traceparent": "00-abc-def-01"})
    requeue.park(request, timestamp=5.0)
    resolve(requeue, bus, TOPIC, request["event_id"])
    (record,) = tail.poll(1.0)
    assert record.key == "s-1"
    assert record.value == {**request, "metadata": {"tenant": "acme", "requeue_override": True}}
    assert dict(record.headers) == {"event_id": request["event_id"].encode(), "session_id": b"s-1",
                                    "event_type": b"message", "tenant_id": b"acme"}
    assert requeue.entries() == []


def test_resolve_keeps_the_entry_when_the_bus_refuses(requeue):
    class RefusingBus(MemoryBus):
        def publish(self, *args, **kwargs):
            raise BusUnavailable("no broker")

    request = tool_request()
    requeue.park(request)
    with pytest.raises(BusUnavailable):
        resolve(requeue, RefusingBus(), TOPIC, request["event_id"])
    assert [e["requeue_id"] for e in requeue.entries()] == [request["event_id"]]


def test_resolve_without_publish_only_removes(requeue):
    bus = MemoryBus()
    tail = bus.tail(TOPIC)
    request = tool_request()
    requeue.park(request)
    resolve(requeue, bus, TOPIC, request["event_id"], publish=False)
    assert requeue.entries() == []
    assert tail.poll(0.05) == []
    with pytest.raises(RequeueNotFound):
        resolve(requeue, bus, TOPIC, request["event_id"], publish=False)
    with pytest.raises(RequeueNotFound):
        resolve(requeue, bus, TOPIC, request["event_id"])


def test_redis_corrupt_and_dangling_entries_do_not_break_the_list(prefix):
    cache = RedisCache(load_settings({"REDIS_URL": REDIS_URL}))
    store = RedisRequeue(cache, prefix)
    client = cache.client
    try:
        good = tool_request()
        store.park(good, timestamp=1.0)
        client.set(f"{prefix}:broken", "{not json")
        client.set(f"{prefix}:a-list", json.dumps([1, 2]))
        client.sadd(f"{prefix}:keys", "broken", "a-list", "gone")  # "gone" has no entry
        client.set(f"{prefix}:no-time", json.dumps({"tool_name": "x", "timestamp": "yesterday"}))
        client.sadd(f"{prefix}:keys", "no-time")
        assert [e["requeue_id"] for e in store.entries()] == [good["event_id"], "no-time"]
        with pytest.raises(RequeueEntryCorrupt):
            store.get("broken")
        assert store.remove("broken") is True
        assert store.remove("gone") is True  # a dangling member is cleaned up too
    finally:
        for key in client.scan_iter(match=f"{prefix}:*"):
            client.delete(key)
        cache.close()


def test_redis_down_is_reported_as_unavailable(prefix):
    cache = RedisCache(load_settings({"REDIS_URL": "redis://127.0.0.1:1/0"}))
    try:
        with pytest.raises(RequeueUnavailable):
            RedisRequeue(cache, prefix).entries()
    finally:
        cache.close()


def test_redis_entry_without_an_event_id_is_republished_under_its_requeue_id(prefix):
    cache = RedisCache(load_settings({"REDIS_URL": REDIS_URL}))
    store = RedisRequeue(cache, prefix)
    bus = MemoryBus()
    tail = bus.tail(TOPIC)
    try:
        cache.client.set(f"{prefix}:r-9", json.dumps({"session_id": "s", "tool_name": "t", "args": {},
                                                      "timestamp": 1.0}))
        cache.client.sadd(f"{prefix}:keys", "r-9")
        resolve(store, bus, TOPIC, "r-9")
        (record,) = tail.poll(1.0)
        assert record.value == {"session_id": "s", "tool_name": "t", "args": {}, "event_id": "r-9",
                                "metadata": {"requeue_override": True}}
        assert dict(record.headers)["event_id"] == b"r-9"
    finally:
        for key in cache.client.scan_iter(match=f"{prefix}:*"):
            cache.client.delete(key)
        cache.close()
