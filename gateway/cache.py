"""The cache role: JSON values with a time to live, and an in-process adapter."""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Protocol


class Cache(Protocol):
    kind: str

    def get_json(self, key: str) -> Any | None: ...

    def set_json(self, key: str, value: Any, ttl: float) -> None: ...

    def add_json(self, key: str, value: Any, ttl: float) -> bool:
        """Set `key` only when it is absent; True when this call set it."""
        ...

    def delete(self, key: str) -> None: ...

    def check(self) -> str: ...

    def close(self) -> None: ...


class MemoryCache:
    """A process-local cache; values are stored as JSON text so they behave as they would in Redis."""

    kind = "memory"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, tuple[str, float]] = {}

    def _live(self, key: str) -> str | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item[1] <= time.monotonic():
            del self._items[key]
            return None
        return item[0]

    def get_json(self, key: str) -> Any | None:
        with self._lock:
            text = self._live(key)
        return None if text is None else json.loads(text)

    def set_json(self, key: str, value: Any, ttl: float) -> None:
        with self._lock:
            self._items[key] = (json.dumps(value), time.monotonic() + ttl)

    def add_json(self, key: str, value: Any, ttl: float) -> bool:
        with self._lock:
            if self._live(key) is not None:
                return False
            self._items[key] = (json.dumps(value), time.monotonic() + ttl)
            return True

    def delete(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)

    def check(self) -> str:
        return "in-process"

    def close(self) -> None:
        pass
