"""Idempotency-Key claims: first, replay, in-flight and mismatch."""

from gateway import idempotency
from gateway.cache import MemoryCache


def test_claim_lifecycle():
    cache = MemoryCache()
    body = {"message": "hi"}
    assert idempotency.claim(cache, "s", "k", body).state == "new"
    assert idempotency.claim(cache, "s", "k", body).state == "in_flight"
    assert idempotency.claim(cache, "s", "k", {"message": "other"}).state == "mismatch"
    idempotency.complete(cache, "s", "k", body, {"session_id": "x"}, ttl=60)
    replay = idempotency.claim(cache, "s", "k", {"message": "hi"})
    assert (replay.state, replay.response) == ("replay", {"session_id": "x"})
    assert idempotency.claim(cache, "other-scope", "k", body).state == "new"


def test_released_claim_can_be_retried():
    cache = MemoryCache()
    assert idempotency.claim(cache, "s", "k", {}).state == "new"
    idempotency.release(cache, "s", "k")
    assert idempotency.claim(cache, "s", "k", {}).state == "new"
