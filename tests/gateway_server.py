"""Runs the real gateway under gunicorn with the gevent worker, as a subprocess on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent

# Settings every test gateway gets unless a test says otherwise: fast replies, frequent heartbeats.
TEST_DEFAULTS = {
    "LEGACY_API_KEY": "test-legacy-key",
    "WORKER_REPLY_DELAY_MS": "10",
    "SSE_HEARTBEAT_SECONDS": "1",
    "BRIDGE_TIMEOUT_SECONDS": "20",
    "LOG_LEVEL": "INFO",
}


def terminate(process: subprocess.Popen | None) -> None:
    """Stop a process gracefully (SIGTERM), killing it if it takes too long."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class GatewayServer:
    """One gateway: `gunicorn -c gunicorn.conf.py wsgi:app` with the given settings."""

    def __init__(self, settings: dict[str, str] | None = None, workers: int = 1) -> None:
        self.settings = {**TEST_DEFAULTS, **(settings or {}), "GATEWAY_WORKERS": str(workers)}
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.log = tempfile.NamedTemporaryFile(prefix="gateway-", suffix=".log", delete=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> "GatewayServer":
        env = {**os.environ, **self.settings}
        cmd = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app",
               "--bind", f"127.0.0.1:{self.port}"]
        self.process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.process.returncode}:\n{self.output()}")
            try:
                if requests.get(f"{self.url}/v1/health", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gateway did not become healthy in {timeout}s:\n{self.output()}")

    def stop(self) -> None:
        terminate(self.process)

    def restart(self) -> None:
        self.stop()
        self.start()

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def __enter__(self) -> "GatewayServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class WorkerProcess:
    """The reference worker as its own process (`python -m worker`), as in the real mode."""

    def __init__(self, settings: dict[str, str]) -> None:
        self.settings = {**TEST_DEFAULTS, **settings}
        self.process: subprocess.Popen | None = None
        self.log = tempfile.NamedTemporaryFile(prefix="worker-", suffix=".log", delete=False)

    def start(self) -> "WorkerProcess":
        self.process = subprocess.Popen([sys.executable, "-m", "worker"], cwd=ROOT,
                                        env={**os.environ, **self.settings}, stdout=self.log,
                                        stderr=subprocess.STDOUT)
        return self

    def stop(self) -> None:
        terminate(self.process)

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")
