"""`Idempotency-Key` handling for /v1 writes: a retry gets the first answer and publishes nothing."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from .cache import Cache

MAX_KEY_LENGTH = 255
# An in-flight marker outlives a crashed request only this long, so a retry is not refused forever.
IN_FLIGHT_TTL_SECONDS = 120


@dataclass(frozen=True)
class Claim:
    """The outcome of claiming a key: `new` (go ahead), `replay`, `in_flight` or `mismatch`."""

    state: str
    response: Any = None


def fingerprint(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def cache_key(scope: str, key: str) -> str:
    return f"idempotency:{scope}:{hashlib.sha256(key.encode()).hexdigest()}"


def claim(cache: Cache, scope: str, key: str, body: Any) -> Claim:
    ckey, fp = cache_key(scope, key), fingerprint(body)
    for _ in range(3):  # the entry may expire between the two calls; try again then
        if cache.add_json(ckey, {"state": "in_flight", "fingerprint": fp}, IN_FLIGHT_TTL_SECONDS):
            return Claim("new")
        existing = cache.get_json(ckey)
        if existing is None:
            continue
        if existing.get("fingerprint") != fp:
            return Claim("mismatch")
        if existing.get("state") != "done":
            return Claim("in_flight")
        return Claim("replay", existing.get("response"))
    return Claim("in_flight")


def complete(cache: Cache, scope: str, key: str, body: Any, response: Any, ttl: float) -> None:
    cache.set_json(cache_key(scope, key), {"state": "done", "fingerprint": fingerprint(body),
                                           "response": response}, ttl)


def release(cache: Cache, scope: str, key: str) -> None:
    """Forget a claim whose request failed, so the client's retry is processed afresh."""
    cache.delete(cache_key(scope, key))
