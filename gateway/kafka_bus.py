"""The event bus role on Kafka, with kafka-python.

Nothing here opens a socket before it is first used: the bus is built before gunicorn forks, and
clients (their sockets and IO threads) must belong to the worker process that uses them. Each process
then holds one producer and one admin client, created on demand and replaced after a failure, so the
gateway recovers by itself when the broker comes back.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, Callable, Iterable, Mapping, TypeVar

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from kafka.net.compat import KafkaNetClient

from .bus import BusUnavailable, Record, partition_for_key
from .settings import Settings

__all__ = ["KafkaBus"]

log = logging.getLogger(__name__)

# How long metadata and admin calls (topic creation, partition discovery) may take.
METADATA_TIMEOUT_SECONDS = 5.0
# How long the health check may take.
CHECK_TIMEOUT_SECONDS = 3.0
# How long read_range may take to read its range before giving up.
READ_RANGE_TIMEOUT_SECONDS = 10.0
# How long the broker may hold a fetch that has no data yet.
FETCH_MAX_WAIT_MS = 100
# How often a tail looks for partitions added to its topic.
PARTITION_CHECK_SECONDS = 5.0
# How long a group may wait for its members to rejoin during a rebalance.
GROUP_REBALANCE_TIMEOUT_MS = 60_000

_TOPIC_ALREADY_EXISTS = 36

Client = TypeVar("Client")


def _create(factory: Callable[..., Client], *args: Any, **config: Any) -> Client:
    """Create a kafka-python client; if it fails (broker down), close what it had already opened.

    A client that fails to bootstrap raises from its constructor but leaves its network client (a
    selector, sockets and an IO thread) behind; during an outage every publish would leak one.
    """
    opened: list[KafkaNetClient] = []

    def network_client(**kwargs: Any) -> KafkaNetClient:
        client = KafkaNetClient(**kwargs)
        opened.append(client)
        return client

    try:
        return factory(*args, kafka_client=network_client, **config)
    except BaseException:
        for client in opened:
            try:
                client.close()
            except Exception:
                log.debug("closing a half-created Kafka client failed", exc_info=True)
        raise


def _to_record(message: Any) -> Record | None:
    """A bus Record from a kafka-python ConsumerRecord; None (with a warning) if its value is not a JSON object."""
    try:
        value = json.loads(message.value) if message.value is not None else None
    except (TypeError, ValueError):
        value = None
    if not isinstance(value, dict):
        log.warning("skipping %s[%d]@%d: value is not a JSON object",
                    message.topic, message.partition, message.offset)
        return None
    key = message.key.decode("utf-8", "replace") if message.key is not None else None
    headers = tuple((name, data or b"") for name, data in (message.headers or ()))
    timestamp = message.timestamp / 1000 if message.timestamp and message.timestamp > 0 else time.time()
    return Record(message.topic, message.partition, message.offset, key, value, headers, timestamp)


class KafkaBus:
    """The bus on Kafka: one producer per process, a consumer per reader."""

    kind = "kafka"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.publish_timeout = settings.kafka_publish_timeout_seconds
        # Held only while a client is being created (which can take a whole timeout when the broker
        # is down); swapping a client in or out is a single assignment and needs no lock.
        self._create_lock = threading.Lock()
        self._producer: KafkaProducer | None = None
        self._admin: KafkaAdminClient | None = None
        self._topics_ready = False
        self._closed = False

    @property
    def topics(self) -> tuple[str, ...]:
        """The topics of spec/events.md, as configured."""
        s = self.settings
        return (s.conversation_inbound, s.conversation_outbound, s.tool_requests_topic, s.tool_results_topic)

    def client_config(self) -> dict[str, Any]:
        """Connection and security settings shared by every client this bus creates."""
        s = self.settings
        config: dict[str, Any] = {
            "bootstrap_servers": [h.strip() for h in s.kafka_bootstrap_servers.split(",") if h.strip()],
            "client_id": s.kafka_client_id,
            "security_protocol": s.kafka_security_protocol,
        }
        if s.kafka_security_protocol.startswith("SASL"):
            config["sasl_mechanism"] = s.kafka_sasl_mechanism
            if s.kafka_sasl_mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
                config["sasl_plain_username"] = s.kafka_sasl_username
                config["sasl_plain_password"] = s.kafka_sasl_password
        return config

    def consumer_config(self) -> dict[str, Any]:
        """Settings shared by every consumer: bounded start-up, and no topic creation as a side effect."""
        return {
            **self.client_config(),
            "bootstrap_timeout_ms": int(METADATA_TIMEOUT_SECONDS * 1000),
            "allow_auto_create_topics": False,
            "enable_auto_commit": False,
            # Streams wait on these reads. Kafka answers a waiting fetch as soon as data arrives, but
            # some compatible brokers (Tansu) only look again after a fraction of the wait: a short
            # wait keeps latency low there, at the cost of one idle fetch a tenth of a second.
            "fetch_max_wait_ms": FETCH_MAX_WAIT_MS,
        }

    # -- clients -------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise BusUnavailable("the Kafka bus is closed")

    def _acquire(self, deadline: float) -> None:
        """Take the creation lock, waiting no longer than `deadline`.

        Callers queued behind a creation that hangs on a down broker must still fail within their
        own timeout.
        """
        if not self._create_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise BusUnavailable("timed out waiting for the Kafka client to be created")

    def _get_admin(self, deadline: float) -> KafkaAdminClient:
        self._check_open()
        admin = self._admin
        if admin is not None:
            return admin
        self._acquire(deadline)
        try:
            if self._admin is None:
                remaining_ms = max(1, int((deadline - time.monotonic()) * 1000))
                self._admin = _create(
                    KafkaAdminClient, **self.client_config(),
                    bootstrap_timeout_ms=remaining_ms,
                    request_timeout_ms=int(METADATA_TIMEOUT_SECONDS * 1000))
            return self._admin
        finally:
            self._create_lock.release()

    def _discard_admin(self, admin: KafkaAdminClient) -> None:
        """Drop a failed admin client: kafka-python's does not reconnect once its broker went away."""
        if self._admin is admin:
            self._admin = None
            self._topics_ready = False
        try:
            admin.close()
        except Exception:
            log.debug("closing the Kafka admin client failed", exc_info=True)

    def _admin_call(self, call: Callable[[KafkaAdminClient], Any],
                    timeout: float = METADATA_TIMEOUT_SECONDS) -> Any:
        """Run `call` with the admin client; raise BusUnavailable (and drop the client) on failure."""
        admin = None
        try:
            admin = self._get_admin(time.monotonic() + timeout)
            return call(admin)
        except BusUnavailable:
            raise
        except Exception as exc:
            if admin is not None:
                self._discard_admin(admin)
            raise BusUnavailable(f"Kafka admin request failed: {exc}") from exc

    def _get_producer(self, deadline: float) -> KafkaProducer:
        self._check_open()
        producer = self._producer
        if producer is not None:
            return producer
        self.ensure_topics_once(deadline)
        self._acquire(deadline)
        try:
            if self._producer is None:
                timeout_ms = max(100, int(self.publish_timeout * 1000))
                remaining_ms = max(1, int((deadline - time.monotonic()) * 1000))
                self._producer = _create(
                    KafkaProducer, **self.client_config(),
                    acks="all",
                    enable_idempotence=True,
                    # Every wait inside the producer is bounded by the publish timeout, and a record
                    # the caller gave up on expires instead of being delivered much later.
                    bootstrap_timeout_ms=remaining_ms,
                    max_block_ms=timeout_ms,
                    request_timeout_ms=timeout_ms,
                    delivery_timeout_ms=timeout_ms)
            return self._producer
        finally:
            self._create_lock.release()

    def _discard_producer(self, producer: KafkaProducer) -> None:
        """Replace the producer after a failure.

        The idempotent producer can enter a state it never leaves (the broker lost its producer id,
        say, after a restart); telling that from a passing timeout is fragile, and a new producer is
        cheap. The old one is closed in the background so other publishes in flight can finish.
        """
        if self._producer is not producer:
            return
        self._producer = None
        # The broker may come back without our topics (or be a new cluster): ensure them again.
        self._topics_ready = False
        threading.Thread(target=self._close_quietly, args=(producer, self.publish_timeout),
                         name="kafka-producer-close", daemon=True).start()

    @staticmethod
    def _close_quietly(producer: KafkaProducer, timeout: float) -> None:
        try:
            producer.close(timeout=timeout)
        except Exception:
            log.debug("closing a discarded Kafka producer failed", exc_info=True)

    # -- topics --------------------------------------------------------------------------------

    def ensure_topics(self, timeout: float = METADATA_TIMEOUT_SECONDS) -> None:
        """Create the four topics with `kafka_topic_partitions` partitions, if configured to; keep existing ones."""
        if not self.settings.kafka_create_topics:
            return
        partitions = self.settings.kafka_topic_partitions
        wanted = {name: {"num_partitions": partitions, "replication_factor": -1}
                  for name in dict.fromkeys(self.topics)}
        result = self._admin_call(lambda admin: admin.create_topics(wanted, raise_errors=False), timeout)
        failed = [f"{t['name']}: {t.get('error_message') or t['error_code']}" for t in result["topics"]
                  if t["error_code"] not in (0, _TOPIC_ALREADY_EXISTS)]
        if failed:
            raise BusUnavailable(f"cannot create Kafka topics: {'; '.join(failed)}")

    def ensure_topics_once(self, deadline: float | None = None) -> None:
        """Run `ensure_topics` before the first use (and again after a failure), by `deadline` if given."""
        if self._topics_ready:
            return
        timeout = METADATA_TIMEOUT_SECONDS if deadline is None else max(0.001, deadline - time.monotonic())
        self.ensure_topics(timeout)
        self._topics_ready = True

    def _partitions(self, topic: str) -> list[int]:
        """The topic's partition ids from the broker (empty if the topic does not exist yet)."""
        described = self._admin_call(lambda admin: admin.describe_topics([topic]))
        return sorted(p["partition_index"] for t in described if t["name"] == topic and t["error_code"] == 0
                      for p in t["partitions"])

    # -- Bus -----------------------------------------------------------------------------------

    def publish(self, topic: str, value: Mapping[str, Any], *, key: str,
                headers: Iterable[tuple[str, bytes]] = ()) -> Record:
        """Publish and wait for the broker's acknowledgement; raise BusUnavailable when none comes in time.

        After BusUnavailable the record was not acknowledged; like any Kafka client, it cannot promise
        the broker never wrote it. A value that is not JSON-serializable raises TypeError/ValueError.
        """
        deadline = time.monotonic() + self.publish_timeout
        payload = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        header_list = [(str(name), bytes(data)) for name, data in headers]
        producer = None
        try:
            producer = self._get_producer(deadline)
            future = producer.send(topic, value=payload, key=key.encode("utf-8"), headers=header_list)
            # Wait on this send only: flush() would wait for every other request's records too.
            meta = future.get(timeout=max(0.0, deadline - time.monotonic()))
        except BusUnavailable:
            raise
        except Exception as exc:
            if producer is not None:
                self._discard_producer(producer)
            raise BusUnavailable(f"Kafka did not acknowledge the publish to {topic}: {exc!r}") from exc
        timestamp = meta.timestamp / 1000 if meta.timestamp and meta.timestamp > 0 else time.time()
        return Record(topic, meta.partition, meta.offset, key, dict(value), tuple(header_list), timestamp)

    def partition_for(self, topic: str, key: str) -> int:
        """The partition the producer will pick for `key`: murmur2 over the topic's current partitions."""
        deadline = time.monotonic() + self.publish_timeout
        try:
            partitions = sorted(self._get_producer(deadline).partitions_for(topic))
        except BusUnavailable:
            raise
        except Exception as exc:
            raise BusUnavailable(f"cannot get the partitions of {topic}: {exc!r}") from exc
        if not partitions:
            raise BusUnavailable(f"topic {topic} has no partitions")
        return partitions[partition_for_key(key, len(partitions))]

    def tail(self, topic: str, positions: Mapping[int, int] | None = None) -> "KafkaTail":
        """A reader of every partition of `topic` outside any consumer group, from `positions` where
        given (a reader resuming after a failure) and from the current end elsewhere."""
        self._check_open()
        self.ensure_topics_once()
        return KafkaTail(self, topic, positions)

    def group_reader(self, topic: str, group: str) -> "KafkaGroupReader":
        """A reader in consumer group `group`, starting from the group's committed offsets (or the beginning)."""
        self._check_open()
        self.ensure_topics_once()
        return KafkaGroupReader(self, topic, group)

    def read_range(self, topic: str, partition: int, start: int, end: int) -> list[Record]:
        """The retained records of one partition with `start <= offset < end`."""
        self._check_open()
        if start >= end:
            return []
        deadline = time.monotonic() + READ_RANGE_TIMEOUT_SECONDS
        tp = TopicPartition(topic, partition)
        try:
            consumer = _create(KafkaConsumer, **self.consumer_config(), group_id=None)
        except (KafkaError, OSError) as exc:
            raise BusUnavailable(f"cannot connect to Kafka: {exc!r}") from exc
        try:
            consumer.assign([tp])
            timeout_ms = max(1, int((deadline - time.monotonic()) * 1000))
            first = consumer.beginning_offsets([tp], timeout_ms=timeout_ms)[tp]
            last = consumer.end_offsets([tp], timeout_ms=timeout_ms)[tp]
            start, end = max(start, first), min(end, last)
            if start >= end:
                return []
            consumer.seek(tp, start)
            records: list[Record] = []
            # Offsets can have gaps (compaction, transaction markers): stop on the position, not a count.
            while consumer.position(tp, timeout_ms=timeout_ms) < end:
                remaining_ms = int((deadline - time.monotonic()) * 1000)
                if remaining_ms <= 0:
                    raise BusUnavailable(f"reading {topic}[{partition}] {start}..{end} timed out")
                for message in consumer.poll(timeout_ms=min(remaining_ms, 500)).get(tp, ()):
                    if message.offset < end:
                        record = _to_record(message)
                        if record is not None:
                            records.append(record)
            return records
        except BusUnavailable:
            raise
        except Exception as exc:
            raise BusUnavailable(f"reading {topic}[{partition}] failed: {exc!r}") from exc
        finally:
            consumer.close()

    def check(self) -> str:
        """Fetch cluster metadata within CHECK_TIMEOUT_SECONDS; raise BusUnavailable if that fails."""
        self._check_open()
        deadline = time.monotonic() + CHECK_TIMEOUT_SECONDS
        cluster = self._admin_call(lambda admin: admin.describe_cluster(), CHECK_TIMEOUT_SECONDS)
        topics = self._admin_call(lambda admin: admin.list_topics(), max(0.001, deadline - time.monotonic()))
        brokers = len(cluster.get("brokers") or ())
        return f"{len(topics)} topics, {brokers} broker{'s' if brokers != 1 else ''}"

    def close(self) -> None:
        """Close the producer and admin client; readers are closed by whoever opened them."""
        self._closed = True
        producer, self._producer = self._producer, None
        admin, self._admin = self._admin, None
        if producer is not None:
            self._close_quietly(producer, self.publish_timeout)
        if admin is not None:
            try:
                admin.close()
            except Exception:
                log.debug("closing the Kafka admin client failed", exc_info=True)


class _KafkaReader:
    """What tails and group readers share: a consumer, and positions readable from other threads."""

    def __init__(self, consumer: KafkaConsumer) -> None:
        self._consumer = consumer
        # KafkaConsumer is not thread-safe, and position() is asked from other greenlets while poll()
        # runs: answer from this copy, which poll keeps up to date.
        self._positions: dict[int, int] = {}
        self._positions_lock = threading.Lock()

    def position(self, partition: int) -> int:
        """The next offset this reader will return from `partition` (0 if it has not seen the partition)."""
        with self._positions_lock:
            return self._positions.get(partition, 0)

    def _set_positions(self, positions: Mapping[int, int]) -> None:
        with self._positions_lock:
            self._positions.update(positions)

    def _records(self, batches: Mapping[TopicPartition, list]) -> list[Record]:
        """Records from a poll result, moving the cached positions past everything returned."""
        records: list[Record] = []
        advanced: dict[int, int] = {}
        for tp, messages in batches.items():
            if not messages:
                continue
            for message in messages:
                record = _to_record(message)
                if record is not None:
                    records.append(record)
            advanced[tp.partition] = messages[-1].offset + 1
        self._set_positions(advanced)
        return records

    def _poll(self, timeout: float) -> list[Record]:
        try:
            batches = self._consumer.poll(timeout_ms=max(0, int(timeout * 1000)))
        except KafkaError as exc:
            raise BusUnavailable(f"Kafka poll failed: {exc!r}") from exc
        return self._records(batches)

    def commit(self) -> None:
        pass

    def close(self) -> None:
        try:
            self._consumer.close()
        except Exception:
            log.debug("closing a Kafka consumer failed", exc_info=True)


class KafkaTail(_KafkaReader):
    """Every partition of one topic from its end, without a consumer group; new partitions from their start."""

    def __init__(self, bus: KafkaBus, topic: str, positions: Mapping[int, int] | None = None) -> None:
        self._resume = dict(positions or {})
        try:
            # Positions are set explicitly; the reset policy only applies when a position falls out
            # of the log (retention overtook this reader): then read what is left rather than skip it.
            consumer = _create(KafkaConsumer, **bus.consumer_config(), group_id=None,
                               auto_offset_reset="earliest")
        except (KafkaError, OSError) as exc:
            raise BusUnavailable(f"cannot connect to Kafka: {exc!r}") from exc
        super().__init__(consumer)
        self._bus = bus
        self.topic = topic
        self._assigned: list[int] = []
        self._next_check = 0.0
        try:
            self._add_partitions(bus._partitions(topic), at_end=True)
        except BaseException:
            self.close()
            raise

    def _add_partitions(self, partitions: list[int], *, at_end: bool) -> None:
        """Assign `partitions` besides those already read, starting at their end or their beginning."""
        self._next_check = time.monotonic() + PARTITION_CHECK_SECONDS
        new = [TopicPartition(self.topic, p) for p in partitions if p not in self._assigned]
        if not new:
            return
        old = [TopicPartition(self.topic, p) for p in self._assigned]
        timeout_ms = int(METADATA_TIMEOUT_SECONDS * 1000)
        try:
            starts = (self._consumer.end_offsets if at_end else self._consumer.beginning_offsets)(
                new, timeout_ms=timeout_ms)
        except KafkaError as exc:
            raise BusUnavailable(f"cannot read the offsets of {self.topic}: {exc!r}") from exc
        if at_end:
            # Resume where a previous reader stopped, never past the end (a broker that lost its
            # data starts again at 0; then the end is where to be).
            starts = {tp: min(self._resume.get(tp.partition, end), end) for tp, end in starts.items()}
        # assign() replaces the whole assignment: put the partitions being read back where they were.
        kept = {tp: self.position(tp.partition) for tp in old}
        self._consumer.assign(old + new)
        for tp, offset in {**kept, **starts}.items():
            self._consumer.seek(tp, offset)
        self._set_positions({tp.partition: offset for tp, offset in starts.items()})
        self._assigned = sorted(self._assigned + [tp.partition for tp in new])
        if old:
            log.info("reading new partitions %s of %s", [tp.partition for tp in new], self.topic)

    def poll(self, timeout: float) -> list[Record]:
        """What arrived on any partition within `timeout` (maybe nothing)."""
        if time.monotonic() >= self._next_check:
            try:
                self._add_partitions(self._bus._partitions(self.topic), at_end=False)
            except BusUnavailable as exc:
                # The consumer keeps retrying by itself; look for new partitions again later.
                log.warning("cannot look for new partitions of %s: %s", self.topic, exc)
        if not self._assigned:
            time.sleep(max(0.0, min(timeout, self._next_check - time.monotonic())))
            return []
        return self._poll(timeout)


class KafkaGroupReader(_KafkaReader):
    """One member of a consumer group reading one topic; `commit` records what `poll` returned."""

    def __init__(self, bus: KafkaBus, topic: str, group: str) -> None:
        session_ms = bus.settings.kafka_session_timeout_ms
        try:
            consumer = _create(
                KafkaConsumer, topic, **bus.consumer_config(),
                group_id=group,
                auto_offset_reset="earliest",
                session_timeout_ms=session_ms,
                # Heartbeats well inside the session; a rebalance is noticed within one interval.
                heartbeat_interval_ms=max(100, session_ms // 4),
                max_poll_interval_ms=GROUP_REBALANCE_TIMEOUT_MS)
        except (KafkaError, OSError) as exc:
            raise BusUnavailable(f"cannot connect to Kafka: {exc!r}") from exc
        super().__init__(consumer)
        self.topic = topic
        self.group = group

    def poll(self, timeout: float) -> list[Record]:
        """Records of this member's partitions that arrived within `timeout` (maybe nothing)."""
        records = self._poll(timeout)
        self._sync_positions()
        return records

    def _sync_positions(self) -> None:
        """Copy the consumer's positions of its current partitions (they change on rebalance)."""
        positions = {}
        for tp in self._consumer.assignment():
            try:
                offset = self._consumer.position(tp, timeout_ms=0)
            except KafkaError:
                offset = None
            if offset is not None:
                positions[tp.partition] = offset
        with self._positions_lock:
            self._positions = positions

    def assigned_partitions(self) -> list[int]:
        """The partitions this member read at its last poll (the group may move them on a rebalance)."""
        with self._positions_lock:
            return sorted(self._positions)

    def commit(self) -> None:
        """Commit, synchronously, the positions after what `poll` returned."""
        try:
            self._consumer.commit(timeout_ms=int(METADATA_TIMEOUT_SECONDS * 1000))
        except KafkaError as exc:
            raise BusUnavailable(f"Kafka commit failed for group {self.group}: {exc!r}") from exc
