"""Fixtures: gateways under gunicorn in both modes, and the real servers behind the real mode.

Every end-to-end test that asks for `gateway`, `start_gateway` or `deploy` runs twice: against the
embedded mode (no servers) and against the real mode (Kafka-compatible broker, Postgres, Redis, and
the reference worker as its own process). Each run of the suite gets its own Postgres schema and
Redis key prefix, and each deployment its own topics, so runs and tests do not see each other.
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import sql

from gateway_server import GatewayServer, WorkerProcess
from kafka_broker import KafkaBroker, kafka_broker  # noqa: F401  (a fixture)

POSTGRES_DSN = os.environ.get("TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
MODES = ("embedded", "real")


class Stack:
    """The backends of one mode: nothing for embedded; broker, schema and key prefix for real."""

    def __init__(self, mode: str, broker: KafkaBroker | None = None) -> None:
        self.mode = mode
        self.broker = broker
        self.run_id = uuid.uuid4().hex[:10]
        self.schema = f"gw_run_{self.run_id}"

    def settings(self) -> dict[str, str]:
        """Settings for a new deployment: in the real mode, servers plus topics of its own."""
        if self.mode == "embedded":
            return {}
        topics = uuid.uuid4().hex[:8]
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap,
            "KAFKA_SESSION_TIMEOUT_MS": "6000",
            "KAFKA_PUBLISH_TIMEOUT_SECONDS": "5",
            "POSTGRES_DSN": POSTGRES_DSN,
            "POSTGRES_SCHEMA": self.schema,
            "REDIS_URL": REDIS_URL,
            "POLICY_REQUEUE_PREFIX": f"test:{self.run_id}:policy:requeue",
            "CONVERSATION_INBOUND": f"conversation.inbound.{topics}",
            "CONVERSATION_OUTBOUND": f"conversation.outbound.{topics}",
            "TOOL_REQUESTS_TOPIC": f"tool.requests.{topics}",
            "TOOL_RESULTS_TOPIC": f"tool.results.{topics}",
            # Groups of their own too: deployments sharing a group would rebalance each other.
            "WORKER_CONSUMER_GROUP": f"conversation-worker.{topics}",
            "HISTORY_CONSUMER_GROUP": f"gateway-history.{topics}",
        }

    def drop(self) -> None:
        if self.mode == "real":
            with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema)))


class Deployment:
    """Gateways sharing one set of settings (and, in the real mode, one reference worker process)."""

    def __init__(self, stack: Stack, settings: dict[str, str] | None = None) -> None:
        self.stack = stack
        self.settings = {**stack.settings(), **(settings or {})}
        self.servers: list[GatewayServer] = []
        self.worker: WorkerProcess | None = None

    def start_gateway(self, workers: int = 1, settings: dict[str, str] | None = None) -> GatewayServer:
        if self.stack.mode == "real" and self.worker is None:
            self.worker = WorkerProcess(self.settings).start()
        server = GatewayServer({**self.settings, **(settings or {})}, workers)
        self.servers.append(server)
        return server.start()

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        if self.worker is not None:
            self.worker.stop()


def _make_stack(mode: str, request) -> Stack:
    broker = request.getfixturevalue("kafka_broker") if mode == "real" else None
    return Stack(mode, broker)


@pytest.fixture(scope="session", params=MODES)
def stack(request):
    """The backends of the mode this test runs in (every test using it runs in both modes)."""
    backends = _make_stack(request.param, request)
    yield backends
    backends.drop()


@pytest.fixture(scope="session")
def real_stack(request):
    """The real-mode backends, for tests that only make sense with real servers."""
    backends = _make_stack("real", request)
    yield backends
    backends.drop()


@pytest.fixture(scope="session")
def mode(stack) -> str:
    return stack.mode


@pytest.fixture(scope="session")
def gateway(stack):
    """The shared gateway of this mode most end-to-end tests talk to."""
    deployment = Deployment(stack)
    try:
        yield deployment.start_gateway()
    finally:
        deployment.stop()


@contextmanager
def _deployments(stack: Stack):
    """A factory of deployments on `stack`; all of them are stopped when the block ends."""
    made: list[Deployment] = []

    def deploy(settings: dict[str, str] | None = None) -> Deployment:
        deployment = Deployment(stack, settings)
        made.append(deployment)
        return deployment

    try:
        yield deploy
    finally:
        for deployment in made:
            deployment.stop()


@pytest.fixture
def deploy(stack):
    """Make deployments of this test's mode with their own settings; stopped after the test."""
    with _deployments(stack) as factory:
        yield factory


@pytest.fixture
def deploy_real(real_stack):
    """Like `deploy`, always in the real mode."""
    with _deployments(real_stack) as factory:
        yield factory


@pytest.fixture
def start_gateway(deploy):
    """Start a gateway of this test's mode with its own settings (and its own topics)."""

    def start(settings: dict[str, str] | None = None, workers: int = 1) -> GatewayServer:
        return deploy(settings).start_gateway(workers)

    return start
