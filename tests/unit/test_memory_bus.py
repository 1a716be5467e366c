"""The in-process bus behaves like Kafka where the gateway relies on it."""

from __future__ import annotations

from gateway.bus import MemoryBus, partition_for_key


def publish(bus, key, n=1, topic="t"):
    return [bus.publish(topic, {"n": i, "key": key}, key=key) for i in range(n)]


def test_keys_stay_on_their_partition_with_increasing_offsets():
    bus = MemoryBus(partitions=4)
    records = publish(bus, "session-a", 3)
    assert {r.partition for r in records} == {partition_for_key("session-a", 4)}
    assert [r.offset for r in records] == [0, 1, 2]


def test_tail_starts_at_the_end():
    bus = MemoryBus()
    publish(bus, "old")
    tail = bus.tail("t")
    assert tail.poll(0.01) == []
    new = publish(bus, "new")
    assert tail.poll(0.5) == new


def test_group_members_split_records_and_a_new_member_resumes():
    bus = MemoryBus(partitions=2)
    for i in range(10):
        publish(bus, f"k{i}")
    first, second = bus.group_reader("t", "g"), bus.group_reader("t", "g")
    got = first.poll(0.1) + second.poll(0.1)
    assert sorted(r.value["key"] for r in got) == sorted(f"k{i}" for i in range(10))
    publish(bus, "later")
    assert [r.value["key"] for r in bus.group_reader("t", "g").poll(0.5)] == ["later"]
    assert len(bus.group_reader("t", "other-group").poll(0.1)) == 11


def test_retention_drops_the_oldest_and_read_range_reports_only_retained():
    bus = MemoryBus(partitions=1, retention=3)
    publish(bus, "k", 5)
    assert [r.offset for r in bus.read_range("t", 0, 0, 10)] == [2, 3, 4]
    assert [r.offset for r in bus.read_range("t", 0, 3, 4)] == [3]
