"""Model profiles (which model serves a role in a deployment mode) and model scores (what /v1/route picks by).

Two repositories share one interface: `MemoryProfiles` for the embedded mode and `PostgresProfiles`
on the tables `model_profiles` and `model_scores` of the Postgres store (real mode).
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Protocol, Sequence

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg_pool import PoolTimeout
from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, TypeAdapter, field_validator

log = logging.getLogger(__name__)

__all__ = [
    "ModelProfile", "ModelScore", "ScoreRecord", "Profiles", "MemoryProfiles", "PostgresProfiles",
    "ProfilesUnavailable", "NoCandidates", "choose_route", "parse_scores",
]

DEFAULT_TEMPERATURE = 0.2


class ProfilesUnavailable(Exception):
    """The store holding profiles and scores did not answer."""


class NoCandidates(ValueError):
    """`/v1/route` was given an empty candidate list."""


@dataclass(frozen=True)
class ModelProfile:
    """The model (and how to call it) that serves `role` in `deployment_mode`."""

    role: str
    deployment_mode: str
    model: str
    base_url: str | None = None
    temperature: float = DEFAULT_TEMPERATURE
    kwargs: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ModelScore:
    """One measured window of a model in a deployment mode; a higher score is better."""

    model: str
    deployment_mode: str
    score: float
    window_start: datetime
    window_end: datetime | None = None
    samples: int = 0


class ScoreRecord(BaseModel):
    """One score as operators write it in a scores file (`flask scores load FILE.json`)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    deployment_mode: str = Field(min_length=1)
    score: FiniteFloat
    # ISO 8601 text or epoch seconds; a time without a zone is taken as UTC.
    window_start: datetime
    window_end: datetime | None = None
    samples: int = Field(default=0, ge=0)

    @field_validator("window_start", "window_end")
    @classmethod
    def _utc_when_naive(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value


_SCORE_LIST = TypeAdapter(list[ScoreRecord])


def parse_scores(data: Any) -> list[ModelScore]:
    """Validate a scores document (a JSON list of score records); raises pydantic's ValidationError."""
    return [ModelScore(**record.model_dump()) for record in _SCORE_LIST.validate_python(data)]


def read_scores_file(path: str) -> list[ModelScore]:
    """The scores of a scores file; raises `SettingsError` naming MODEL_SCORES_FILE when unusable."""
    from .settings import SettingsError

    try:
        with open(path, "rb") as file:
            return parse_scores(json.load(file))
    except (OSError, ValueError) as exc:  # ValueError covers bad JSON and pydantic's ValidationError
        raise SettingsError(f"MODEL_SCORES_FILE: cannot load {path!r}: {exc}") from None


class Profiles(Protocol):
    """What the gateway needs from the store of profiles and scores."""

    kind: str

    def list_profiles(self, deployment_mode: str | None = None) -> list[ModelProfile]:
        """Every profile (of one deployment mode when given), by role then mode."""
        ...

    def upsert_profile(self, profile: ModelProfile) -> None:
        """Create the profile of (role, deployment_mode), or replace it."""
        ...

    def delete_profile(self, role: str, deployment_mode: str) -> bool:
        """Remove one profile; False when there was none."""
        ...

    def record_scores(self, scores: Iterable[ModelScore]) -> int:
        """Store scores (all or none), replacing the one of the same model, mode and window start."""
        ...

    def newest_scores(self, models: Sequence[str], deployment_mode: str | None = None) -> dict[str, float]:
        """The score of each model's newest window (in `deployment_mode` when given; models without one are absent)."""
        ...


def choose_route(profiles: Profiles, candidates: Sequence[str], *,
                 deployment_mode: str | None = None) -> tuple[str, float | None]:
    """The candidate with the best newest score, else the first candidate with no score."""
    if not candidates:
        raise NoCandidates("No candidates supplied")
    scores = profiles.newest_scores(list(dict.fromkeys(candidates)), deployment_mode)
    best: tuple[str, float | None] = (candidates[0], None)
    for candidate in candidates:
        score = scores.get(candidate)
        # Strictly better only, so among equal scores the caller's order decides.
        if score is not None and (best[1] is None or score > best[1]):
            best = (candidate, score)
    return best


class MemoryProfiles:
    """Profiles and scores in this process's memory (the embedded mode)."""

    kind = "memory"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._profiles: dict[tuple[str, str], ModelProfile] = {}
        # (model, mode, window_start) -> (arrival order, score): the order breaks ties between windows.
        self._scores: dict[tuple[str, str, datetime], tuple[int, ModelScore]] = {}
        self._arrivals = itertools.count()

    def list_profiles(self, deployment_mode: str | None = None) -> list[ModelProfile]:
        with self._lock:
            chosen = [p for p in self._profiles.values()
                      if deployment_mode is None or p.deployment_mode == deployment_mode]
        return sorted(chosen, key=lambda p: (p.role, p.deployment_mode))

    def upsert_profile(self, profile: ModelProfile) -> None:
        with self._lock:
            self._profiles[(profile.role, profile.deployment_mode)] = profile

    def delete_profile(self, role: str, deployment_mode: str) -> bool:
        with self._lock:
            return self._profiles.pop((role, deployment_mode), None) is not None

    def record_scores(self, scores: Iterable[ModelScore]) -> int:
        scores = list(scores)
        with self._lock:
            for score in scores:
                self._scores[(score.model, score.deployment_mode, score.window_start)] = (next(self._arrivals), score)
        return len(scores)

    def newest_scores(self, models: Sequence[str], deployment_mode: str | None = None) -> dict[str, float]:
        wanted = set(models)
        newest: dict[str, tuple[datetime, int, float]] = {}
        with self._lock:
            for arrival, score in self._scores.values():
                if score.model not in wanted or deployment_mode not in (None, score.deployment_mode):
                    continue
                entry = (score.window_start, arrival, score.score)
                if score.model not in newest or entry[:2] > newest[score.model][:2]:
                    newest[score.model] = entry
        return {model: entry[2] for model, entry in newest.items()}


def _unavailable(exc: Exception) -> ProfilesUnavailable:
    log.error("the model profile store did not answer: %s", exc)
    return ProfilesUnavailable(str(exc))


class PostgresProfiles:
    """Profiles and scores in the Postgres store's tables, shared by every gateway process."""

    kind = "postgres"

    def __init__(self, store: Any) -> None:
        # A PostgresStore: its pool, its migrated schema and its table names.
        self.store = store

    def _run(self, query: sql.Composable, params: Sequence[Any] = ()) -> list[tuple]:
        try:
            with self.store.connection() as conn:
                cur = conn.execute(query, params)
                return cur.fetchall() if cur.description else [(cur.rowcount,)]
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise _unavailable(exc) from exc

    def list_profiles(self, deployment_mode: str | None = None) -> list[ModelProfile]:
        where, params = (sql.SQL(""), ()) if deployment_mode is None else \
            (sql.SQL(" WHERE deployment_mode = %s"), (deployment_mode,))
        query = sql.SQL("SELECT role, deployment_mode, model, base_url, temperature, kwargs FROM {}{}"
                        " ORDER BY role, deployment_mode").format(self.store.table("model_profiles"), where)
        return [ModelProfile(*row) for row in self._run(query, params)]

    def upsert_profile(self, profile: ModelProfile) -> None:
        query = sql.SQL(
            "INSERT INTO {} (role, deployment_mode, model, base_url, temperature, kwargs)"
            " VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (role, deployment_mode) DO UPDATE SET model = EXCLUDED.model,"
            " base_url = EXCLUDED.base_url, temperature = EXCLUDED.temperature,"
            " kwargs = EXCLUDED.kwargs, updated_at = now()").format(self.store.table("model_profiles"))
        kwargs = None if profile.kwargs is None else Jsonb(profile.kwargs)
        self._run(query, (profile.role, profile.deployment_mode, profile.model, profile.base_url,
                          profile.temperature, kwargs))

    def delete_profile(self, role: str, deployment_mode: str) -> bool:
        query = sql.SQL("DELETE FROM {} WHERE role = %s AND deployment_mode = %s").format(
            self.store.table("model_profiles"))
        return self._run(query, (role, deployment_mode))[0][0] > 0

    def record_scores(self, scores: Iterable[ModelScore]) -> int:
        rows = [(s.model, s.deployment_mode, s.score, s.window_start, s.window_end, s.samples) for s in scores]
        query = sql.SQL(
            "INSERT INTO {} (model, deployment_mode, score, window_start, window_end, samples)"
            " VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (model, deployment_mode, window_start) DO UPDATE SET score = EXCLUDED.score,"
            " window_end = EXCLUDED.window_end, samples = EXCLUDED.samples, recorded_at = now()"
        ).format(self.store.table("model_scores"))
        try:
            with self.store.connection() as conn, conn.transaction(), conn.cursor() as cur:
                cur.executemany(query, rows)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise _unavailable(exc) from exc
        return len(rows)

    def newest_scores(self, models: Sequence[str], deployment_mode: str | None = None) -> dict[str, float]:
        mode_filter, params = (sql.SQL(""), (list(models),)) if deployment_mode is None else \
            (sql.SQL(" AND deployment_mode = %s"), (list(models), deployment_mode))
        # DISTINCT ON keeps the first row of each model in this order: its newest window.
        query = sql.SQL(
            "SELECT DISTINCT ON (model) model, score FROM {} WHERE model = ANY(%s){}"
            " ORDER BY model, window_start DESC, recorded_at DESC, id DESC"
        ).format(self.store.table("model_scores"), mode_filter)
        return {model: score for model, score in self._run(query, params)}


def build_profiles(store: Any) -> Profiles:
    """The repository that lives where the store does: Postgres tables, or this process's memory."""
    if getattr(store, "kind", None) == "postgres":
        return PostgresProfiles(store)
    return MemoryProfiles()
