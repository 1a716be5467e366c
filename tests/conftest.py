"""Fixtures: a gateway per test module (or per test, for special settings), and HTTP helpers."""

from __future__ import annotations

import pytest

from gateway_server import GatewayServer

LEGACY_KEY = "test-legacy-key"


@pytest.fixture(scope="session")
def gateway():
    """The shared embedded-mode gateway most end-to-end tests talk to."""
    with GatewayServer() as server:
        yield server


@pytest.fixture
def start_gateway():
    """Start extra gateways with their own settings; all are stopped after the test."""
    servers: list[GatewayServer] = []

    def start(settings: dict[str, str] | None = None, workers: int = 1) -> GatewayServer:
        server = GatewayServer(settings, workers)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()
