"""The cache role in Redis (redis-py): JSON text values with a time to live, shared by all processes."""

from __future__ import annotations

import json
import math
import threading
from typing import Any
from urllib.parse import urlsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from .settings import Settings, SettingsError

__all__ = ["RedisCache"]

# Bounded so a hung Redis fails a request after seconds instead of holding it forever.
SOCKET_TIMEOUT_SECONDS = 3.0
CONNECT_TIMEOUT_SECONDS = 2.0
# One quick retry covers a pooled connection that a Redis restart closed; more would only stretch a
# real outage past the health check's time bound.
RETRIES = 1


class RedisCache:
    """A cache in Redis; values are stored as JSON text, so any process can read what another wrote."""

    kind = "redis"

    def __init__(self, settings: Settings) -> None:
        if not settings.redis_url:
            raise SettingsError("REDIS_URL: required by the Redis cache")
        self.settings = settings
        self._lock = threading.Lock()
        self._client: redis.Redis | None = None

    @property
    def client(self) -> redis.Redis:
        """The shared redis.Redis client (decoded str replies), created on first use in this process."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._new_client()
        return self._client

    def _new_client(self) -> redis.Redis:
        url = self.settings.redis_url
        kwargs: dict[str, Any] = {
            "decode_responses": True,
            "socket_timeout": SOCKET_TIMEOUT_SECONDS,
            "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS,
            "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), RETRIES),
            "health_check_interval": 30,
        }
        if self.settings.redis_password and not urlsplit(url).password:
            kwargs["password"] = self.settings.redis_password
        # redis-py's pool notices a fork and opens new connections in the child.
        return redis.Redis.from_url(url, **kwargs)

    def get_json(self, key: str) -> Any | None:
        text = self.client.get(key)
        return None if text is None else json.loads(text)

    def set_json(self, key: str, value: Any, ttl: float) -> None:
        self.client.set(key, json.dumps(value), px=_ttl_ms(ttl))

    def add_json(self, key: str, value: Any, ttl: float) -> bool:
        return bool(self.client.set(key, json.dumps(value), px=_ttl_ms(ttl), nx=True))

    def delete(self, key: str) -> None:
        self.client.delete(key)

    def check(self) -> str:
        self.client.ping()
        options = self.client.connection_pool.connection_kwargs
        where = options.get("path") or f"{options.get('host')}:{options.get('port')}"
        return f"redis {where} db {options.get('db', 0)}"

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()


def _ttl_ms(ttl: float) -> int:
    # Redis refuses a zero or negative expiry; the shortest it keeps is one millisecond.
    return max(1, math.ceil(ttl * 1000))
