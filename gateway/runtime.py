"""The per-process runtime: the adapters chosen by settings and the background parts using them.

Created by the app factory but started lazily, on the first request, so nothing opens a socket or a
thread before gunicorn forks its workers. Nothing outside this module knows which adapters are in use.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from flask import current_app

from .api_keys import ApiKeyRepository, MemoryApiKeyRepository, PostgresApiKeyRepository
from .bus import Bus, MemoryBus
from .cache import Cache, MemoryCache
from .hub import OutboundHub
from .profiles import MemoryProfiles, ModelScore, Profiles, build_profiles, read_scores_file
from .recorder import HistoryRecorder
from .requeue import MemoryRequeue, Requeue, build_requeue
from .settings import Settings
from .store import MemoryStore, Store

log = logging.getLogger(__name__)

EXTENSION = "gateway"


def build_bus(settings: Settings) -> Bus:
    if settings.kafka_bootstrap_servers:
        from .kafka_bus import KafkaBus

        return KafkaBus(settings)
    return MemoryBus(settings.memory_bus_partitions, settings.memory_bus_retention)


def build_store(settings: Settings) -> Store:
    if settings.postgres_dsn:
        from .postgres_store import PostgresStore

        return PostgresStore(settings)
    return MemoryStore(settings.history_retention_events)


def build_cache(settings: Settings) -> Cache:
    if settings.redis_url:
        from .redis_cache import RedisCache

        return RedisCache(settings)
    return MemoryCache()


def build_api_keys(store: Store) -> ApiKeyRepository:
    # Keys live where the store lives: the `api_keys` table in Postgres, else this process's memory.
    if store.kind == "postgres":
        return PostgresApiKeyRepository(store)
    return MemoryApiKeyRepository()


@dataclass
class Runtime:
    settings: Settings
    bus: Bus
    store: Store
    cache: Cache
    hub: OutboundHub
    recorder: HistoryRecorder
    worker: object | None = None
    api_keys: ApiKeyRepository = field(default_factory=MemoryApiKeyRepository)
    profiles: Profiles = field(default_factory=MemoryProfiles)
    requeue: Requeue = field(default_factory=MemoryRequeue)
    sweeper: object | None = None  # the session expiry sweep (gateway/expiry.py), made on start
    scores_to_load: list[ModelScore] = field(default_factory=list)  # MODEL_SCORES_FILE, loaded on start
    _started: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_settings(cls, settings: Settings) -> "Runtime":
        bus = build_bus(settings)
        store = build_store(settings)
        cache = build_cache(settings)
        hub = OutboundHub(bus, settings.conversation_outbound, settings.stream_queue_size)
        recorder = HistoryRecorder(bus, store, settings.conversation_outbound, settings.history_consumer_group)
        worker = None
        if settings.worker_in_process:
            from worker import ReferenceWorker

            worker = ReferenceWorker.from_settings(bus, settings)
        # Read (and check) the scores file now, so a bad one stops the gateway at start.
        scores = read_scores_file(settings.model_scores_file) if settings.model_scores_file else []
        return cls(settings, bus, store, cache, hub, recorder, worker, api_keys=build_api_keys(store),
                   profiles=build_profiles(store),
                   requeue=build_requeue(cache, settings.policy_requeue_prefix), scores_to_load=scores)

    @property
    def mode(self) -> str:
        return "embedded" if self.settings.embedded_roles else "real"

    def start(self) -> None:
        """Start the background parts once per process (idempotent, cheap after the first call)."""
        if self._started:
            return
        with self._lock:
            if self._started:
                return
            self.hub.start()
            self.recorder.start()
            if self.worker is not None:
                self.worker.start()
            if self.sweeper is None:
                from .expiry import ExpirySweeper  # imported here: it builds on this module

                self.sweeper = ExpirySweeper(self, self.settings.session_sweep_interval_seconds)
            self.sweeper.start()
            self._load_scores()
            self._started = True
            log.info("gateway runtime started (bus=%s, store=%s, cache=%s, worker=%s)",
                     self.bus.kind, self.store.kind, self.cache.kind,
                     "in-process" if self.worker else "external")

    def _load_scores(self) -> None:
        if not self.scores_to_load:
            return
        try:
            count = self.profiles.record_scores(self.scores_to_load)
            log.info("loaded %d model score(s) from MODEL_SCORES_FILE", count)
        except Exception:  # the scores only steer /v1/route; serving must not depend on them
            log.exception("could not load MODEL_SCORES_FILE into the %s store", self.profiles.kind)

    def stop(self) -> None:
        for part in (self.sweeper, self.worker, self.recorder, self.hub):
            if part is not None:
                part.stop()
        for adapter in (self.bus, self.store, self.cache):
            adapter.close()


def current_runtime() -> Runtime:
    return current_app.extensions[EXTENSION]
