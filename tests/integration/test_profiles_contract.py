"""The model profile and score repositories, run against the in-process one and Postgres alike."""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from psycopg import sql
from pydantic import ValidationError

from gateway.postgres_store import PostgresStore
from gateway.profiles import (MemoryProfiles, ModelProfile, ModelScore, NoCandidates, PostgresProfiles,
                              ProfilesUnavailable, choose_route, parse_scores)
from gateway.settings import load_settings

DSN = os.environ.get("POSTGRES_DSN") or "postgresql://postgres@127.0.0.1:5432/test"
T0 = datetime(2025, 10, 1, tzinfo=timezone.utc)


def postgres_store(schema: str, dsn: str = DSN) -> PostgresStore:
    return PostgresStore(load_settings({"POSTGRES_DSN": dsn, "POSTGRES_SCHEMA": schema,
                                        "POSTGRES_POOL_MIN": "0", "POSTGRES_POOL_MAX": "4"}))


@pytest.fixture(params=["memory", "postgres"])
def profiles(request):
    if request.param == "memory":
        yield MemoryProfiles()
        return
    schema = f"gw_test_{uuid.uuid4().hex[:16]}"
    store = postgres_store(schema)
    yield PostgresProfiles(store)
    store.close()
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def score(model: str, value: float, *, mode: str = "prod", hours: int = 0) -> ModelScore:
    return ModelScore(model=model, deployment_mode=mode, score=value, window_start=T0 + timedelta(hours=hours))


def test_profiles_upsert_list_filter_and_delete(profiles):
    profiles.upsert_profile(ModelProfile("dialogue", "prod", "m-1", "http://llm", 0.5, {"top_p": 0.9}))
    profiles.upsert_profile(ModelProfile("dialogue", "dev", "m-2"))
    profiles.upsert_profile(ModelProfile("planner", "prod", "m-3", kwargs={"nested": {"a": [1, None]}}))
    profiles.upsert_profile(ModelProfile("dialogue", "prod", "m-4", "http://other", 0.1, None))  # replaces

    assert profiles.list_profiles() == [
        ModelProfile("dialogue", "dev", "m-2", None, 0.2, None),
        ModelProfile("dialogue", "prod", "m-4", "http://other", 0.1, None),
        ModelProfile("planner", "prod", "m-3", None, 0.2, {"nested": {"a": [1, None]}}),
    ]
    assert [p.role for p in profiles.list_profiles("prod")] == ["dialogue", "planner"]
    assert profiles.list_profiles("staging") == []
    assert profiles.delete_profile("dialogue", "prod") is True
    assert profiles.delete_profile("dialogue", "prod") is False
    assert [(p.role, p.deployment_mode) for p in profiles.list_profiles()] == [("dialogue", "dev"), ("planner", "prod")]


def test_route_takes_the_best_newest_window(profiles):
    profiles.record_scores([
        score("a", 0.9, hours=0), score("a", 0.4, hours=1),   # a's newest window is worse
        score("b", 0.6, hours=0),
        score("c", 0.99, mode="dev", hours=5),                # another mode
    ])
    assert choose_route(profiles, ["a", "b"], deployment_mode="prod") == ("b", 0.6)
    assert choose_route(profiles, ["a", "b", "c"], deployment_mode="prod") == ("b", 0.6)
    assert choose_route(profiles, ["a", "b", "c"]) == ("c", 0.99)  # no mode: each model's newest window anywhere
    assert choose_route(profiles, ["x", "y"], deployment_mode="prod") == ("x", None)
    assert choose_route(profiles, ["x", "a"], deployment_mode="prod") == ("a", 0.4)


def test_equal_scores_keep_the_callers_order(profiles):
    profiles.record_scores([score("a", 0.5), score("b", 0.5)])
    assert choose_route(profiles, ["b", "a"]) == ("b", 0.5)
    assert choose_route(profiles, ["a", "b", "a"]) == ("a", 0.5)


def test_a_window_loaded_again_replaces_its_score(profiles):
    assert profiles.record_scores([score("a", 0.1), score("b", 0.3)]) == 2
    profiles.record_scores([score("a", 0.7)])
    assert choose_route(profiles, ["b", "a"]) == ("a", 0.7)


def test_empty_candidates_are_refused(profiles):
    with pytest.raises(NoCandidates):
        choose_route(profiles, [])


def test_scores_file_accepts_iso_and_epoch_times_and_reads_naive_as_utc():
    scores = parse_scores([
        {"model": "a", "deployment_mode": "prod", "score": 1, "window_start": "2025-10-01T00:00:00"},
        {"model": "b", "deployment_mode": "prod", "score": 0.5, "window_start": 1759276800,
         "window_end": "2025-10-01T01:00:00+02:00", "samples": 12},
    ])
    assert scores[0].window_start == T0 and scores[0].score == 1.0
    assert scores[1].window_start == T0 and scores[1].samples == 12


@pytest.mark.parametrize("document", [
    {"model": "a"},                                                                      # not a list
    [{"model": "a", "deployment_mode": "prod", "window_start": "2025-10-01"}],           # no score
    [{"model": "a", "deployment_mode": "prod", "score": "high", "window_start": "2025-10-01"}],
    [{"model": "", "deployment_mode": "prod", "score": 1, "window_start": "2025-10-01"}],
    [{"model": "a", "deployment_mode": "prod", "score": float("nan"), "window_start": "2025-10-01"}],
    [{"model": "a", "deployment_mode": "prod", "score": 1, "window_start": "2025-10-01", "extra": 1}],
])
def test_scores_file_mistakes_are_refused(document):
    with pytest.raises(ValidationError):
        parse_scores(document)


def test_postgres_down_is_reported_as_unavailable():
    store = postgres_store("gw_never_created", dsn="postgresql://postgres@127.0.0.1:1/test?connect_timeout=1")
    try:
        with pytest.raises(ProfilesUnavailable):
            PostgresProfiles(store).list_profiles()
    finally:
        store.close()
