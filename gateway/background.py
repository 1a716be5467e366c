"""Background work of a gateway process: a daemon thread with a stop flag, and the consumer-group loop."""

from __future__ import annotations

import logging
import threading
from typing import Callable

from .bus import Bus, Record

log = logging.getLogger(__name__)

# How long a failed reader waits before it is replaced (the bus may be down).
RESTART_PAUSE_SECONDS = 1.0


class Background:
    """Runs `run()` on a daemon thread once `start()` is called (any number of times); `stop()` asks it
    to end. Under gevent's patching the thread is a greenlet."""

    thread_name = "background"

    def __init__(self) -> None:
        self._stopping = threading.Event()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self.run, name=self.thread_name, daemon=True)
                self._thread.start()

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        raise NotImplementedError


def consume_group(bus: Bus, topic: str, group: str, handle: Callable[[list[Record]], None],
                  stopping: threading.Event, what: str) -> None:
    """Hand each batch of `topic`, read in consumer group `group`, to `handle` and commit it after,
    until `stopping` is set; a reader that fails (the bus went away) is replaced after a pause."""
    while not stopping.is_set():
        try:
            reader = bus.group_reader(topic, group)
            try:
                while not stopping.is_set():
                    records = reader.poll(0.5)
                    if records:
                        handle(records)
                        reader.commit()
            finally:
                reader.close()
        except Exception:
            log.exception("%s failed; restarting its reader", what)
            stopping.wait(RESTART_PAUSE_SECONDS)
