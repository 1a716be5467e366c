"""/v1 API keys: issuing, listing, revoking and verifying `sk_...` secrets, kept in one of two repositories.

A secret is `sk_<key_id hex>_<random urlsafe>`. Only a salted PBKDF2-SHA256 hash of it is stored, as one
self-describing text (`pbkdf2_sha256$<iterations>$<salt>$<hash>`), so the cost can grow without
invalidating older keys. Verification finds the key by the `key_id` inside the secret, then compares
hashes in constant time.

Hashing 390,000 rounds costs a noticeable fraction of a second, so each process remembers a successful
verification for `VERIFY_CACHE_SECONDS`. A key revoked in this process fails at once here; other processes
notice within that time (they serve it from their cache until the entry expires).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Protocol, TypeVar

log = logging.getLogger(__name__)

__all__ = ["ApiKey", "ApiKeyRepository", "ApiKeyService", "KeyStoreUnavailable", "MemoryApiKeyRepository",
           "PostgresApiKeyRepository", "hash_secret", "check_secret", "key_id_of", "SECRET_PREFIX"]

SECRET_PREFIX = "sk_"
PREFIX_LENGTH = 12
HASH_SCHEME = "pbkdf2_sha256"
# How long a successful verification is trusted without asking the repository again (per process).
VERIFY_CACHE_SECONDS = 5.0
VERIFY_CACHE_MAX_ENTRIES = 4096
# `last_used_at` is written at most this often per key.
TOUCH_INTERVAL_SECONDS = 60.0
SECRET_SHAPE = re.compile(r"sk_([0-9a-f]{32})_[A-Za-z0-9_-]{16,128}")

T = TypeVar("T")


class KeyStoreUnavailable(RuntimeError):
    """The repository could not be asked about a key (e.g. Postgres is down)."""


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    label: str
    prefix: str
    secret_hash: str
    created_at: float
    created_by: str | None = None
    last_used_at: float | None = None
    revoked: bool = False
    scopes: tuple[str, ...] = ()

    def public(self) -> dict[str, Any]:
        """The key as the API shows it: everything but the hash (the secret is never stored)."""
        return {"key_id": self.key_id, "label": self.label, "created_at": self.created_at,
                "created_by": self.created_by, "prefix": self.prefix, "last_used_at": self.last_used_at,
                "revoked": self.revoked, "scopes": list(self.scopes)}


# -- secrets and hashes


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_secret(key_id: str) -> str:
    return f"{SECRET_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def key_id_of(secret: str) -> str | None:
    """The key id inside a well-formed secret, else None."""
    match = SECRET_SHAPE.fullmatch(secret)
    return match.group(1) if match else None


def hash_secret(secret: str, iterations: int, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", secret.encode(), salt, iterations)
    return f"{HASH_SCHEME}${iterations}${_b64(salt)}${_b64(digest)}"


def check_secret(secret: str, encoded: str) -> bool:
    """Whether `secret` matches the stored hash text, compared in constant time."""
    try:
        scheme, iterations, salt, digest = encoded.split("$")
        if scheme != HASH_SCHEME:
            return False
        expected = _unb64(digest)
        actual = hashlib.pbkdf2_hmac("sha256", secret.encode(), _unb64(salt), int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def run_blocking(fn: Callable[..., T], *args: Any) -> T:
    """Run CPU-heavy work off the gevent loop when serving under gevent.

    PBKDF2 releases the GIL, so on gevent's native thread pool other greenlets keep being served while
    a key is hashed; elsewhere (tests, plain threads) it simply runs here.
    """
    try:
        from gevent import get_hub, monkey
    except ImportError:  # pragma: no cover - gevent is a runtime dependency
        return fn(*args)
    if not monkey.is_module_patched("threading"):
        return fn(*args)
    return get_hub().threadpool.apply(fn, args)


# -- repositories


class ApiKeyRepository(Protocol):
    kind: str

    def add(self, key: ApiKey) -> None: ...

    def get(self, key_id: str) -> ApiKey | None: ...

    def all(self) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first."""
        ...

    def revoke(self, key_id: str) -> bool:
        """Mark the key revoked; False when no such key exists."""
        ...

    def touch(self, key_id: str, now: float, not_since: float) -> None:
        """Set `last_used_at = now` unless it is already at or after `not_since`."""
        ...

    def exists(self) -> bool:
        """Whether any key was ever issued (revoked ones count)."""
        ...


class MemoryApiKeyRepository:
    """Keys in this process's memory (the embedded mode)."""

    kind = "memory"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, ApiKey] = {}

    def add(self, key: ApiKey) -> None:
        with self._lock:
            self._keys[key.key_id] = key

    def get(self, key_id: str) -> ApiKey | None:
        with self._lock:
            return self._keys.get(key_id)

    def all(self) -> list[ApiKey]:
        with self._lock:
            return sorted(self._keys.values(), key=lambda k: (k.created_at, k.key_id))

    def revoke(self, key_id: str) -> bool:
        with self._lock:
            key = self._keys.get(key_id)
            if key is None:
                return False
            self._keys[key_id] = replace(key, revoked=True)
            return True

    def touch(self, key_id: str, now: float, not_since: float) -> None:
        with self._lock:
            key = self._keys.get(key_id)
            if key is not None and (key.last_used_at is None or key.last_used_at < not_since):
                self._keys[key_id] = replace(key, last_used_at=now)

    def exists(self) -> bool:
        with self._lock:
            return bool(self._keys)


class PostgresApiKeyRepository:
    """Keys in the `api_keys` table of the Postgres store (durable, shared by every process)."""

    kind = "postgres"
    COLUMNS = "key_id, label, prefix, secret_hash, created_at, created_by, last_used_at, revoked, scopes"

    def __init__(self, store: Any) -> None:
        from psycopg import sql

        self._sql = sql
        self._store = store
        self._table = store.table("api_keys")

    def _query(self, text: str):
        return self._sql.SQL(text).format(keys=self._table)

    @staticmethod
    def _row(row: tuple) -> ApiKey:
        key_id, label, prefix, secret_hash, created_at, created_by, last_used_at, revoked, scopes = row
        return ApiKey(key_id, label, prefix, secret_hash, created_at, created_by, last_used_at, revoked,
                      tuple(scopes.split()))

    def add(self, key: ApiKey) -> None:
        with self._store.connection() as conn:
            conn.execute(self._query(f"INSERT INTO {{keys}} ({self.COLUMNS})"
                                     " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"),
                         (key.key_id, key.label, key.prefix, key.secret_hash, key.created_at, key.created_by,
                          key.last_used_at, key.revoked, " ".join(key.scopes)))

    def get(self, key_id: str) -> ApiKey | None:
        with self._store.connection() as conn:
            row = conn.execute(self._query(f"SELECT {self.COLUMNS} FROM {{keys}} WHERE key_id = %s"),
                               (key_id,)).fetchone()
        return None if row is None else self._row(row)

    def all(self) -> list[ApiKey]:
        with self._store.connection() as conn:
            rows = conn.execute(self._query(
                f"SELECT {self.COLUMNS} FROM {{keys}} ORDER BY created_at, key_id")).fetchall()
        return [self._row(row) for row in rows]

    def revoke(self, key_id: str) -> bool:
        with self._store.connection() as conn:
            cur = conn.execute(self._query("UPDATE {keys} SET revoked = true WHERE key_id = %s"), (key_id,))
            return cur.rowcount > 0

    def touch(self, key_id: str, now: float, not_since: float) -> None:
        # The condition makes the once-a-minute bound hold across processes, not only within one.
        with self._store.connection() as conn:
            conn.execute(self._query(
                "UPDATE {keys} SET last_used_at = %s"
                " WHERE key_id = %s AND (last_used_at IS NULL OR last_used_at < %s)"),
                (now, key_id, not_since))

    def exists(self) -> bool:
        with self._store.connection() as conn:
            return bool(conn.execute(self._query("SELECT EXISTS (SELECT 1 FROM {keys})")).fetchone()[0])


# -- the service


class ApiKeyService:
    """Issue, list, revoke and verify keys; one per process (its verification cache is per process)."""

    def __init__(self, repository: ApiKeyRepository, *, iterations: int,
                 cache_seconds: float = VERIFY_CACHE_SECONDS) -> None:
        self.repository = repository
        self.iterations = iterations
        self.cache_seconds = cache_seconds
        self._lock = threading.Lock()
        # sha256(secret) -> (key, monotonic expiry). A fast hash is enough: secrets carry 256 random bits.
        self._verified: dict[bytes, tuple[ApiKey, float]] = {}
        # Revocation is permanent, so a key revoked here never needs asking about again.
        self._revoked_here: set[str] = set()
        self._touched: dict[str, float] = {}
        self._issued = False
        self._issued_checked_at = float("-inf")

    def create(self, *, label: str, created_by: str | None, scopes: Iterable[str] = ()) -> dict[str, Any]:
        """Issue a key; the answer holds the secret, which is never shown again."""
        key_id = uuid.uuid4().hex
        secret = new_secret(key_id)
        key = ApiKey(key_id=key_id, label=label, prefix=secret[:PREFIX_LENGTH],
                     secret_hash=run_blocking(hash_secret, secret, self.iterations),
                     created_at=time.time(), created_by=created_by, scopes=tuple(scopes))
        self.repository.add(key)
        self._issued = True
        return {**key.public(), "secret": secret}

    def list(self) -> list[dict[str, Any]]:
        return [key.public() for key in self.repository.all()]

    def revoke(self, key_id: str) -> bool:
        found = self.repository.revoke(key_id)
        if found:
            with self._lock:
                self._revoked_here.add(key_id)
                for fingerprint in [f for f, (key, _) in self._verified.items() if key.key_id == key_id]:
                    del self._verified[fingerprint]
        return found

    def verify(self, secret: str) -> ApiKey | None:
        """The active key this secret belongs to, or None (unknown, revoked, wrong secret, not a key).

        Raises `KeyStoreUnavailable` when the repository cannot be asked.
        """
        key_id = key_id_of(secret)
        if key_id is None:
            return None
        fingerprint = hashlib.sha256(secret.encode()).digest()
        now = time.monotonic()
        with self._lock:
            if key_id in self._revoked_here:
                return None
            cached = self._verified.get(fingerprint)
        if cached is not None and cached[1] > now:
            key = cached[0]
        else:
            key = self._verify_uncached(key_id, secret)
            if key is None:
                return None
            self._remember(fingerprint, key, now)
        self._touch(key)
        return key

    def _verify_uncached(self, key_id: str, secret: str) -> ApiKey | None:
        try:
            key = self.repository.get(key_id)
        except Exception as exc:
            log.warning("API key lookup failed: %s", type(exc).__name__)
            raise KeyStoreUnavailable("API key store unavailable") from exc
        if key is None or key.revoked:
            return None
        return key if run_blocking(check_secret, secret, key.secret_hash) else None

    def _remember(self, fingerprint: bytes, key: ApiKey, now: float) -> None:
        with self._lock:
            if key.key_id in self._revoked_here:  # revoked while this verification ran
                return
            if len(self._verified) >= VERIFY_CACHE_MAX_ENTRIES:
                for stale in [f for f, (_, expiry) in self._verified.items() if expiry <= now]:
                    del self._verified[stale]
                if len(self._verified) >= VERIFY_CACHE_MAX_ENTRIES:
                    self._verified.clear()
            self._verified[fingerprint] = (key, now + self.cache_seconds)

    def _touch(self, key: ApiKey) -> None:
        """Record the use, at most once a minute per key; a failure here never fails the request."""
        now = time.time()
        with self._lock:
            last = max(self._touched.get(key.key_id, float("-inf")), key.last_used_at or float("-inf"))
            if now - last < TOUCH_INTERVAL_SECONDS:
                return
            self._touched[key.key_id] = now
        try:
            self.repository.touch(key.key_id, now, now - TOUCH_INTERVAL_SECONDS)
        except Exception as exc:
            log.warning("could not record the use of API key %s: %s", key.key_id, type(exc).__name__)

    def any_issued(self) -> bool:
        """Whether any key was ever issued (revoked ones count), as of at most the cache time ago."""
        if self._issued:
            return True
        now = time.monotonic()
        if now - self._issued_checked_at >= self.cache_seconds:
            self._issued = self.repository.exists()
            self._issued_checked_at = now
        return self._issued
