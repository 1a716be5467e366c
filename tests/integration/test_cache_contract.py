"""The cache contract, run against the in-process cache and the Redis cache alike.

Every test writes under its own unique key prefix and the Redis keys under it are deleted afterwards.
REDIS_URL (default: the local server) says where Redis is.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

import pytest
import redis

from gateway.cache import MemoryCache
from gateway.redis_cache import RedisCache
from gateway.settings import load_settings

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"


def redis_settings(url: str = REDIS_URL, password: str = ""):
    return load_settings({"REDIS_URL": url, "REDIS_PASSWORD": password})


@pytest.fixture
def prefix():
    return f"test:cache:{uuid.uuid4().hex}:"


@pytest.fixture(params=["memory", "redis"])
def cache(request, prefix):
    if request.param == "memory":
        yield MemoryCache()
        return
    cache = RedisCache(redis_settings())
    yield cache
    for key in cache.client.scan_iter(match=f"{prefix}*"):
        cache.client.delete(key)
    cache.close()


def wait_until(predicate, timeout: float, interval: float = 0.01) -> bool:
    """Poll `predicate` until it is true or `timeout` passes; True when it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()

VALUES = [
    {"a": 1, "nested": {"list": [1, 2.5, "x", None, True]}, "text": "héllo ✓"},
    [1, "two", {"three": 3}],
    "just text",
    42,
    0.125,
    True,
    False,
    0,
    "",
    [],
    {},
]


def test_kind_and_check(cache):
    assert cache.kind in ("memory", "redis")
    text = cache.check()
    assert isinstance(text, str) and text


def test_missing_key_is_none(cache, prefix):
    assert cache.get_json(prefix + "missing") is None


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__ + str(len(str(v))))
def test_set_and_get_round_trip_json(cache, prefix, value):
    cache.set_json(prefix + "k", value, 60)
    got = cache.get_json(prefix + "k")
    assert got == value and type(got) is type(value)


def test_set_overwrites(cache, prefix):
    cache.set_json(prefix + "k", {"v": 1}, 60)
    cache.set_json(prefix + "k", {"v": 2}, 60)
    assert cache.get_json(prefix + "k") == {"v": 2}


def test_keys_are_independent(cache, prefix):
    cache.set_json(prefix + "a", "A", 60)
    cache.set_json(prefix + "b", "B", 60)
    cache.delete(prefix + "a")
    assert cache.get_json(prefix + "a") is None
    assert cache.get_json(prefix + "b") == "B"


def test_add_json_sets_only_absent_keys(cache, prefix):
    assert cache.add_json(prefix + "k", {"first": True}, 60) is True
    assert cache.add_json(prefix + "k", {"second": True}, 60) is False
    assert cache.get_json(prefix + "k") == {"first": True}
    cache.delete(prefix + "k")
    assert cache.add_json(prefix + "k", {"third": True}, 60) is True
    assert cache.get_json(prefix + "k") == {"third": True}


def test_add_json_refuses_a_key_set_by_set_json(cache, prefix):
    cache.set_json(prefix + "k", 1, 60)
    assert cache.add_json(prefix + "k", 2, 60) is False
    assert cache.get_json(prefix + "k") == 1


def test_add_json_has_one_winner_among_concurrent_callers(cache, prefix):
    results: list[bool] = []
    start = threading.Barrier(8)

    def claim(n: int) -> None:
        start.wait()
        results.append(cache.add_json(prefix + "claim", n, 60))

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
    assert cache.get_json(prefix + "claim") in range(8)


def test_delete_of_missing_key_is_fine(cache, prefix):
    cache.delete(prefix + "never")
    assert cache.get_json(prefix + "never") is None


def test_set_json_value_expires_after_its_ttl(cache, prefix):
    ttl = 0.3
    started = time.monotonic()
    cache.set_json(prefix + "k", "v", ttl)
    assert cache.get_json(prefix + "k") == "v"
    assert wait_until(lambda: cache.get_json(prefix + "k") is None, timeout=ttl + 5)
    assert time.monotonic() - started >= ttl - 0.05  # not before its time (allowing clock grain)


def test_add_json_value_expires_and_the_key_is_free_again(cache, prefix):
    assert cache.add_json(prefix + "k", 1, 0.2)
    assert not cache.add_json(prefix + "k", 2, 60)
    assert wait_until(lambda: cache.get_json(prefix + "k") is None, timeout=5)
    assert cache.add_json(prefix + "k", 3, 60)
    assert cache.get_json(prefix + "k") == 3


def test_set_json_renews_the_ttl(cache, prefix):
    cache.set_json(prefix + "short", 1, 0.2)
    cache.set_json(prefix + "short", 2, 60)
    cache.set_json(prefix + "marker", 0, 0.2)
    # Once a key written with the same short TTL is gone, the renewed one must still be there.
    assert wait_until(lambda: cache.get_json(prefix + "marker") is None, timeout=5)
    assert cache.get_json(prefix + "short") == 2


def test_tiny_ttl_still_expires(cache, prefix):
    cache.set_json(prefix + "k", "v", 0.0001)
    assert wait_until(lambda: cache.get_json(prefix + "k") is None, timeout=5)


def test_close_is_safe_to_repeat(cache, prefix):
    cache.set_json(prefix + "k", 1, 60)
    cache.close()
    cache.close()


# -- Redis only

@pytest.fixture
def redis_cache(prefix):
    cache = RedisCache(redis_settings())
    yield cache
    for key in cache.client.scan_iter(match=f"{prefix}*"):
        cache.client.delete(key)
    cache.close()


def test_redis_values_are_json_text_with_a_ttl(redis_cache, prefix):
    redis_cache.set_json(prefix + "k", {"a": [1, 2]}, 30)
    assert redis_cache.client.get(prefix + "k") == '{"a": [1, 2]}'
    assert 29_000 <= redis_cache.client.pttl(prefix + "k") <= 30_000
    redis_cache.add_json(prefix + "n", "x", 1.5)
    assert 1_000 < redis_cache.client.pttl(prefix + "n") <= 1_500


def test_redis_client_is_shared_and_writes_are_visible(redis_cache, prefix):
    client = redis_cache.client
    assert isinstance(client, redis.Redis)
    assert redis_cache.client is client
    client.set(prefix + "raw", '{"from": "elsewhere"}')
    assert redis_cache.get_json(prefix + "raw") == {"from": "elsewhere"}


def test_redis_caches_of_two_processes_see_each_other(redis_cache, prefix):
    other = RedisCache(redis_settings())
    try:
        assert other.add_json(prefix + "k", 1, 60)
        assert not redis_cache.add_json(prefix + "k", 2, 60)
        assert redis_cache.get_json(prefix + "k") == 1
    finally:
        other.close()


def test_redis_client_is_reopened_after_close(redis_cache, prefix):
    redis_cache.set_json(prefix + "k", 1, 60)
    redis_cache.close()
    assert redis_cache.get_json(prefix + "k") == 1


def test_redis_cache_does_not_connect_until_used():
    cache = RedisCache(redis_settings("redis://127.0.0.1:1/0"))  # nothing listens on port 1
    started = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        cache.check()
    assert time.monotonic() - started < 10
    cache.close()


def test_redis_password_comes_from_settings_unless_the_url_has_one():
    options = RedisCache(redis_settings(password="s3cret")).client.connection_pool.connection_kwargs
    assert options["password"] == "s3cret"
    in_url = RedisCache(redis_settings("redis://:fromurl@127.0.0.1:6379/0", password="s3cret"))
    assert in_url.client.connection_pool.connection_kwargs["password"] == "fromurl"
    assert RedisCache(redis_settings()).client.connection_pool.connection_kwargs.get("password") is None


def test_redis_socket_timeouts_are_bounded():
    options = RedisCache(redis_settings()).client.connection_pool.connection_kwargs
    assert 0 < options["socket_timeout"] <= 5
    assert 0 < options["socket_connect_timeout"] <= 5
