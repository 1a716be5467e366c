"""`/v1/requeue`: tool requests parked by the tool executor, listed, resolved (republished) and deleted.

Real mode: the test parks requests by writing Redis exactly as the tool executor does, and reads what
resolve publishes from the broker with kafka-python. Embedded mode: the parked requests and the bus live
inside the gateway process, so those tests drive the app in-process (Flask's test client).
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
import redis
import requests
from kafka import KafkaConsumer, TopicPartition

from conftest import Deployment
from gateway.app import create_app
from gateway.bus import BusUnavailable
from gateway_server import free_port
from kafka_broker import KafkaBroker


def tool_request(**fields):
    return {"event_id": str(uuid.uuid4()), "session_id": f"session-{uuid.uuid4().hex[:8]}", "persona_id": "p-1",
            "tool_name": "shell", "args": {"cmd": "rm -rf /tmp/x"}, "metadata": {"tenant": "acme", "k": "v"},
            **fields}


# -- real mode: Redis written as the tool executor writes it, Kafka read as the executor reads it


class Executor:
    """Stands in for the tool executor: parks requests in Redis under its keys."""

    def __init__(self, settings):
        self.client = redis.Redis.from_url(settings["REDIS_URL"], decode_responses=True)
        self.prefix = settings["POLICY_REQUEUE_PREFIX"]

    def park(self, request, timestamp=None):
        payload = {**request, "timestamp": time.time() if timestamp is None else timestamp}
        self.client.set(f"{self.prefix}:{request['event_id']}", json.dumps(payload))
        self.client.sadd(f"{self.prefix}:keys", request["event_id"])
        return request["event_id"]

    def parked(self, requeue_id):
        return (self.client.exists(f"{self.prefix}:{requeue_id}") == 1,
                self.client.sismember(f"{self.prefix}:keys", requeue_id) == 1)

    def clear(self):
        for key in self.client.scan_iter(match=f"{self.prefix}:*"):
            self.client.delete(key)


@pytest.fixture(scope="module")
def real_gateway(real_stack):
    deployment = Deployment(real_stack)
    try:
        yield deployment.start_gateway()
    finally:
        deployment.stop()


@pytest.fixture
def executor(real_gateway):
    parker = Executor(real_gateway.settings)
    parker.clear()  # each test starts with no parked requests
    yield parker
    parker.clear()
    parker.client.close()


@pytest.fixture
def tool_requests(real_gateway):
    """A kafka-python consumer of every partition of the tool requests topic, from its current end."""
    topic = real_gateway.settings["TOOL_REQUESTS_TOPIC"]
    consumer = KafkaConsumer(bootstrap_servers=real_gateway.settings["KAFKA_BOOTSTRAP_SERVERS"],
                             enable_auto_commit=False)
    deadline = time.monotonic() + 20
    while not consumer.partitions_for_topic(topic):  # the gateway creates its topics when it starts
        assert time.monotonic() < deadline, f"topic {topic} never appeared"
        time.sleep(0.1)
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
    consumer.assign(partitions)
    consumer.seek_to_end()
    for partition in partitions:
        consumer.position(partition)  # settle the end offsets now, before anything is published
    yield consumer
    consumer.close()


def read_records(consumer, count, timeout=15.0):
    records = []
    deadline = time.monotonic() + timeout
    while len(records) < count and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=200).values():
            records.extend(batch)
    return records


def call(server, method, path, **kwargs):
    return requests.request(method, f"{server.url}{path}", timeout=30, **kwargs)


def test_list_shows_parked_requests_newest_first(real_gateway, executor):
    older, newer = tool_request(), tool_request(tool_name="browser")
    executor.park(older, timestamp=1_700_000_000.5)
    executor.park(newer, timestamp=1_700_000_100.25)
    response = call(real_gateway, "GET", "/v1/requeue")
    assert response.status_code == 200
    assert response.json() == [
        {**newer, "timestamp": 1_700_000_100.25, "requeue_id": newer["event_id"]},
        {**older, "timestamp": 1_700_000_000.5, "requeue_id": older["event_id"]},
    ]


def test_a_corrupt_entry_is_skipped_not_fatal(real_gateway, executor):
    good = tool_request()
    executor.park(good)
    executor.client.set(f"{executor.prefix}:broken", "{this is not json")
    executor.client.sadd(f"{executor.prefix}:keys", "broken", "vanished")
    response = call(real_gateway, "GET", "/v1/requeue")
    assert response.status_code == 200
    assert [entry["requeue_id"] for entry in response.json()] == [good["event_id"]]
    assert "skipping a parked request: requeue entry broken is not valid JSON" in real_gateway.output()

    # It cannot be republished, but an operator can drop it.
    resolved = call(real_gateway, "POST", "/v1/requeue/broken/resolve")
    assert (resolved.status_code, resolved.json()) == (409, {"detail": "requeue item is corrupt; delete it"})
    deleted = call(real_gateway, "DELETE", "/v1/requeue/broken")
    assert (deleted.status_code, deleted.json()) == (200, {"status": "deleted"})


def test_resolve_republishes_with_the_override_then_removes(real_gateway, executor, tool_requests):
    request = tool_request(trace_context={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
    requeue_id = executor.park(request)
    response = call(real_gateway, "POST", f"/v1/requeue/{requeue_id}/resolve")
    assert (response.status_code, response.json()) == (200, {"status": "resolved"})
    assert response.headers["X-API-Version"] == "v1"

    (record,) = read_records(tool_requests, 1)
    assert record.key == request["session_id"].encode()
    assert json.loads(record.value) == {**request, "metadata": {"tenant": "acme", "k": "v", "requeue_override": True}}
    assert dict(record.headers) == {"event_id": request["event_id"].encode(),
                                    "session_id": request["session_id"].encode(),
                                    "event_type": b"message", "tenant_id": b"acme"}
    assert executor.parked(requeue_id) == (False, False)
    assert call(real_gateway, "GET", "/v1/requeue").json() == []


def test_resolve_without_publish_only_removes(real_gateway, executor, tool_requests):
    requeue_id = executor.park(tool_request())
    response = call(real_gateway, "POST", f"/v1/requeue/{requeue_id}/resolve", params={"publish": "false"})
    assert (response.status_code, response.json()) == (200, {"status": "resolved"})
    assert executor.parked(requeue_id) == (False, False)
    # Something published after it is the first thing on the topic: resolve published nothing.
    marker = executor.park(tool_request())
    assert call(real_gateway, "POST", f"/v1/requeue/{marker}/resolve").status_code == 200
    assert [json.loads(r.value)["event_id"] for r in read_records(tool_requests, 1)] == [marker]


def test_unknown_ids_are_404(real_gateway, executor):
    for method, path in (("POST", "/v1/requeue/nope/resolve"), ("POST", "/v1/requeue/nope/resolve?publish=false"),
                         ("DELETE", "/v1/requeue/nope")):
        response = call(real_gateway, method, path)
        assert (response.status_code, response.json()) == (404, {"detail": "requeue item not found"}), path


def test_delete_removes_the_entry_and_its_set_member(real_gateway, executor):
    requeue_id = executor.park(tool_request())
    response = call(real_gateway, "DELETE", f"/v1/requeue/{requeue_id}")
    assert (response.status_code, response.json()) == (200, {"status": "deleted"})
    assert executor.parked(requeue_id) == (False, False)


def test_publish_must_be_a_boolean(real_gateway, executor):
    requeue_id = executor.park(tool_request())
    response = call(real_gateway, "POST", f"/v1/requeue/{requeue_id}/resolve", params={"publish": "perhaps"})
    assert response.status_code == 422
    assert response.json() == {"detail": [{"loc": ["query", "publish"], "type": "bool_parsing",
                                           "msg": "Input should be a valid boolean, unable to interpret input"}]}
    assert executor.parked(requeue_id) == (True, True)


def test_resolve_keeps_the_entry_when_the_broker_is_down(deploy_real):
    with KafkaBroker() as broker:  # a broker of this test's own, so stopping it disturbs no other test
        server = deploy_real({"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
                              "KAFKA_PUBLISH_TIMEOUT_SECONDS": "1"}).start_gateway()
        parker = Executor(server.settings)
        try:
            requeue_id = parker.park(tool_request())
            broker.stop()
            response = call(server, "POST", f"/v1/requeue/{requeue_id}/resolve")
            assert (response.status_code, response.json()) == (502, {"detail": "Message queue unavailable"})
            assert parker.parked(requeue_id) == (True, True)
            assert [e["requeue_id"] for e in call(server, "GET", "/v1/requeue").json()] == [requeue_id]
        finally:
            parker.clear()
            parker.client.close()


def test_redis_down_is_503(deploy_real):
    server = deploy_real({"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}).start_gateway()
    response = call(server, "GET", "/v1/requeue")
    assert (response.status_code, response.json()) == (503, {"detail": "Requeue store unavailable"})


# -- embedded mode: the requeue store and the bus are inside the app


@pytest.fixture
def app():
    app = create_app({"RUN_WORKER_IN_PROCESS": "false"})
    yield app
    app.extensions["gateway"].stop()


@pytest.fixture
def runtime(app):
    return app.extensions["gateway"]


def test_embedded_list_resolve_and_delete(app, runtime):
    client = app.test_client()
    older, newer, dropped = tool_request(), tool_request(), tool_request()
    runtime.requeue.park(older, timestamp=10.0)
    runtime.requeue.park(newer, timestamp=20.0)
    runtime.requeue.park(dropped, timestamp=5.0)
    assert [e["requeue_id"] for e in client.get("/v1/requeue").get_json()] == \
        [newer["event_id"], older["event_id"], dropped["event_id"]]

    tail = runtime.bus.tail(runtime.settings.tool_requests_topic)
    response = client.post(f"/v1/requeue/{newer['event_id']}/resolve?publish=true")
    assert (response.status_code, response.get_json()) == (200, {"status": "resolved"})
    (record,) = tail.poll(1.0)
    assert record.key == newer["session_id"]
    assert record.value == {**newer, "metadata": {**newer["metadata"], "requeue_override": True}}

    response = client.post(f"/v1/requeue/{older['event_id']}/resolve?publish=0")
    assert (response.status_code, response.get_json()) == (200, {"status": "resolved"})
    assert tail.poll(0.05) == []

    response = client.delete(f"/v1/requeue/{dropped['event_id']}")
    assert (response.status_code, response.get_json()) == (200, {"status": "deleted"})
    assert client.get("/v1/requeue").get_json() == []
    response = client.delete(f"/v1/requeue/{dropped['event_id']}")
    assert (response.status_code, response.get_json()) == (404, {"detail": "requeue item not found"})


def test_embedded_resolve_is_502_and_keeps_the_entry_when_the_bus_refuses(app, runtime):
    def refuse(*args, **kwargs):
        raise BusUnavailable("no broker")

    runtime.bus.publish = refuse
    request = tool_request()
    runtime.requeue.park(request)
    response = app.test_client().post(f"/v1/requeue/{request['event_id']}/resolve")
    assert (response.status_code, response.get_json()) == (502, {"detail": "Message queue unavailable"})
    assert [e["requeue_id"] for e in app.test_client().get("/v1/requeue").get_json()] == [request["event_id"]]
