"""The store contract, run against the in-process store and the Postgres store alike.

Each Postgres store gets a fresh, uniquely named schema that is dropped after the test, so runs never
see each other's rows. POSTGRES_DSN (default: the local test database) says where Postgres is.
"""

from __future__ import annotations

import dataclasses
import os
import time
import uuid

import psycopg
import pytest
from psycopg import sql

from gateway.postgres_store import PostgresStore, apply_migrations, load_migrations
from gateway.settings import SettingsError, load_settings
from gateway.store import MemoryStore, Session, StoredEvent

DSN = os.environ.get("POSTGRES_DSN") or "postgresql://postgres@127.0.0.1:5432/test"


def unique_schema() -> str:
    return f"gw_test_{uuid.uuid4().hex[:16]}"


def drop_schema(schema: str) -> None:
    """Remove a test schema and everything in it."""
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def postgres_settings(schema: str, retention: int = 10_000, **extra: str):
    return load_settings({"POSTGRES_DSN": DSN, "POSTGRES_SCHEMA": schema,
                          "HISTORY_RETENTION_EVENTS": str(retention), "POSTGRES_POOL_MIN": "0",
                          "POSTGRES_POOL_MAX": "4", **extra})


@pytest.fixture(params=["memory", "postgres"])
def make_store(request):
    """A factory of empty stores of one kind; Postgres ones live in schemas dropped afterwards."""
    made: list[tuple[object, str | None]] = []

    def make(retention: int = 10_000):
        if request.param == "memory":
            store = MemoryStore(retention)
            made.append((store, None))
        else:
            schema = unique_schema()
            store = PostgresStore(postgres_settings(schema, retention))
            made.append((store, schema))
        return store

    yield make
    for store, schema in made:
        store.close()
        if schema:
            drop_schema(schema)


@pytest.fixture
def store(make_store):
    return make_store()


def outbound(store, session_id, event_id, offset, *, timestamp=None, partition=0, **fields):
    event = {"event_id": event_id, "session_id": session_id, "type": "assistant", **fields}
    return store.record_event(session_id, event, direction="outbound",
                              timestamp=time.time() if timestamp is None else timestamp,
                              partition=partition, offset=offset)


def inbound(store, session_id, event_id, *, timestamp=None, **fields):
    event = {"event_id": event_id, "session_id": session_id, "type": "user", **fields}
    return store.record_event(session_id, event, direction="inbound",
                              timestamp=time.time() if timestamp is None else timestamp)


def ids(events):
    return [e.event_id for e in events]


# -- sessions

def test_kind_and_check(store):
    assert store.kind in ("memory", "postgres")
    text = store.check()
    assert isinstance(text, str) and text


def test_ensure_session_creates_a_session(store):
    before = time.time()
    session = store.ensure_session("s1", persona_id="p1")
    assert isinstance(session, Session)
    assert session.session_id == "s1"
    assert session.persona_id == "p1"
    assert session.history_floor == -1
    assert session.expires_at is None
    assert session.log_guid
    assert before - 1 <= session.created_at <= time.time() + 1
    assert store.get_session("s1") == session


def test_ensure_session_keeps_an_existing_session(store):
    # The in-process store hands out its live objects, so compare copied values, not the objects.
    first = dataclasses.replace(store.ensure_session("s1", persona_id="p1"))
    again = store.ensure_session("s1")
    assert again.created_at == first.created_at
    assert again.log_guid == first.log_guid
    assert again.persona_id == "p1"  # not given: unchanged
    assert again.updated_at >= first.updated_at
    changed = store.ensure_session("s1", persona_id="p2")
    assert changed.persona_id == "p2"
    assert store.get_session("s1").persona_id == "p2"


def test_get_session_of_unknown_id_is_none(store):
    assert store.get_session("nope") is None


def test_sessions_are_independent(store):
    store.ensure_session("a")
    store.ensure_session("b")
    assert store.get_session("a").log_guid != store.get_session("b").log_guid
    assert outbound(store, "a", "ea", 0)
    assert ids(store.history("a")) == ["ea"]
    assert store.history("b") == []


# -- recording

def test_record_event_stores_the_event_once(store):
    store.ensure_session("s1")
    event = {"event_id": "e1", "session_id": "s1", "type": "assistant",
             "message": "héllo ✓", "metadata": {"n": 1, "f": 0.25, "ok": True, "none": None, "l": [1, "x"]}}
    assert store.record_event("s1", event, direction="outbound", timestamp=123.5, partition=2, offset=7)
    assert not store.record_event("s1", event, direction="outbound", timestamp=124.0, partition=2, offset=8)
    [stored] = store.history("s1")
    assert isinstance(stored, StoredEvent)
    assert (stored.session_id, stored.event_id, stored.direction) == ("s1", "e1", "outbound")
    assert stored.event == event
    assert (stored.timestamp, stored.partition, stored.offset) == (123.5, 2, 7)


def test_an_event_with_a_nul_character_is_kept(store):
    store.ensure_session("s1")
    assert store.record_event("s1", {"event_id": "e1", "message": "a\x00b"}, direction="outbound",
                              timestamp=1.0, partition=0, offset=0)
    assert store.history("s1")[0].event["message"] in ("a\x00b", "a\ufffdb")


def test_inbound_events_have_no_position(store):
    store.ensure_session("s1")
    assert inbound(store, "s1", "u1", timestamp=5.0)
    [stored] = store.history("s1")
    assert (stored.direction, stored.partition, stored.offset) == ("inbound", None, None)


def test_event_ids_are_unique_across_sessions(store):
    store.ensure_session("a")
    store.ensure_session("b")
    assert inbound(store, "a", "same")
    assert not inbound(store, "b", "same")
    assert store.history("b") == []


def test_record_event_refuses_an_unknown_session(store):
    assert not outbound(store, "ghost", "e1", 0)
    assert not inbound(store, "ghost", "u1")
    assert store.get_session("ghost") is None  # recording never creates a session


def test_record_event_refuses_an_event_without_id(store):
    store.ensure_session("s1")
    assert not store.record_event("s1", {"type": "user"}, direction="inbound", timestamp=1.0)
    assert not store.record_event("s1", {"event_id": ""}, direction="inbound", timestamp=1.0)
    assert store.history("s1") == []


def test_record_event_refuses_offsets_at_or_below_the_floor(store):
    store.ensure_session("s1")
    store.reset_session("s1", floor=10)
    assert not outbound(store, "s1", "below", 9)
    assert not outbound(store, "s1", "at", 10)
    assert outbound(store, "s1", "above", 11)
    assert inbound(store, "s1", "no-offset")  # events without a position are not concerned
    assert ids(store.history("s1")) == ["above", "no-offset"]


def test_seq_grows_with_each_recorded_event(store):
    store.ensure_session("s1")
    for n in range(4):
        assert inbound(store, "s1", f"u{n}", timestamp=100.0)
    seqs = [e.seq for e in store.history("s1")]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4


# -- reading

def test_outbound_after_orders_by_offset(store):
    store.ensure_session("s1")
    for event_id, offset in (("e5", 5), ("e2", 2), ("e9", 9), ("e3", 3)):
        assert outbound(store, "s1", event_id, offset)
    inbound(store, "s1", "u1")
    assert ids(store.outbound_after("s1", None)) == ["e2", "e3", "e5", "e9"]
    assert ids(store.outbound_after("s1", 3)) == ["e5", "e9"]  # strictly above
    assert ids(store.outbound_after("s1", -1)) == ["e2", "e3", "e5", "e9"]
    assert store.outbound_after("s1", 9) == []
    assert [e.offset for e in store.outbound_after("s1", 4)] == [5, 9]


def test_outbound_after_of_unknown_session_is_empty(store):
    assert store.outbound_after("ghost", None) == []


def test_history_orders_by_timestamp_then_arrival(store):
    store.ensure_session("s1")
    assert outbound(store, "s1", "late", 1, timestamp=30.0)
    assert inbound(store, "s1", "early", timestamp=10.0)
    assert inbound(store, "s1", "tie-first", timestamp=20.0)
    assert outbound(store, "s1", "tie-second", 2, timestamp=20.0)
    assert ids(store.history("s1")) == ["early", "tie-first", "tie-second", "late"]


def test_history_of_unknown_session_is_empty(store):
    assert store.history("ghost") == []


# -- retention

def test_retention_keeps_the_newest_events_and_raises_the_floor(make_store):
    store = make_store(retention=3)
    store.ensure_session("s1")
    # Arrival order decides what is trimmed, not timestamps.
    for n in range(5):
        assert outbound(store, "s1", f"e{n}", n, timestamp=100.0 - n)
    assert sorted(ids(store.history("s1"))) == ["e2", "e3", "e4"]
    assert ids(store.outbound_after("s1", None)) == ["e2", "e3", "e4"]
    assert store.get_session("s1").history_floor == 1
    # A trimmed event is below the floor now, so a redelivery does not bring it back.
    assert not outbound(store, "s1", "e0", 0)
    assert outbound(store, "s1", "e5", 5)
    assert ids(store.outbound_after("s1", None)) == ["e3", "e4", "e5"]
    assert store.get_session("s1").history_floor == 2


def test_retention_without_positions_keeps_the_floor(make_store):
    store = make_store(retention=2)
    store.ensure_session("s1")
    for n in range(4):
        assert inbound(store, "s1", f"u{n}", timestamp=float(n))
    assert ids(store.history("s1")) == ["u2", "u3"]
    assert store.get_session("s1").history_floor == -1
    assert inbound(store, "s1", "u0", timestamp=0.5)  # its id was forgotten with it


def test_retention_is_per_session(make_store):
    store = make_store(retention=2)
    store.ensure_session("a")
    store.ensure_session("b")
    for n in range(3):
        outbound(store, "a", f"a{n}", n)
    outbound(store, "b", "b0", 0)
    assert ids(store.outbound_after("a", None)) == ["a1", "a2"]
    assert ids(store.outbound_after("b", None)) == ["b0"]
    assert store.get_session("b").history_floor == -1


# -- reset and delete

def test_reset_session_clears_history_and_renews_the_log(store):
    first = dataclasses.replace(store.ensure_session("s1", persona_id="p1"))
    outbound(store, "s1", "e1", 4)
    outbound(store, "s1", "e2", 6)
    inbound(store, "s1", "u1")
    reset = store.reset_session("s1")
    assert isinstance(reset, Session)
    assert reset.log_guid != first.log_guid
    assert reset.history_floor == 6  # the highest offset that was in history
    assert reset.persona_id == "p1" and reset.created_at == first.created_at
    assert store.history("s1") == []
    assert store.outbound_after("s1", None) == []
    assert store.get_session("s1") == reset
    assert not outbound(store, "s1", "e1", 4)  # a redelivery of cleared events stays out
    assert inbound(store, "s1", "u1")  # ids of cleared events are free again


def test_reset_session_floor_argument(store):
    store.ensure_session("s1")
    outbound(store, "s1", "e1", 4)
    assert store.reset_session("s1", floor=20).history_floor == 20
    assert store.reset_session("s1", floor=3).history_floor == 20  # never lowered
    assert store.reset_session("s1").history_floor == 20
    assert not outbound(store, "s1", "e2", 20)
    assert outbound(store, "s1", "e3", 21)


def test_reset_session_of_empty_session_keeps_floor(store):
    store.ensure_session("s1")
    assert store.reset_session("s1").history_floor == -1


def test_reset_session_restarts_retention(make_store):
    store = make_store(retention=3)
    store.ensure_session("s1")
    for n in range(3):
        outbound(store, "s1", f"e{n}", n)
    store.reset_session("s1")
    for n in range(3, 6):
        assert outbound(store, "s1", f"e{n}", n)
    assert ids(store.outbound_after("s1", None)) == ["e3", "e4", "e5"]
    assert store.get_session("s1").history_floor == 2


def test_reset_session_of_unknown_id_is_none(store):
    assert store.reset_session("ghost") is None
    assert store.reset_session("ghost", floor=5) is None
    assert store.get_session("ghost") is None


def test_delete_session_removes_session_and_history(store):
    store.ensure_session("s1")
    store.ensure_session("other")
    outbound(store, "s1", "e1", 1)
    inbound(store, "other", "keep")
    assert store.delete_session("s1") is True
    assert store.get_session("s1") is None
    assert store.history("s1") == []
    assert store.outbound_after("s1", None) == []
    assert not outbound(store, "s1", "e2", 2)  # a late reply does not bring it back
    assert store.get_session("s1") is None
    assert ids(store.history("other")) == ["keep"]
    assert store.delete_session("s1") is False


def test_deleted_session_can_start_again(store):
    store.ensure_session("s1")
    outbound(store, "s1", "e1", 5)
    store.delete_session("s1")
    again = store.ensure_session("s1")
    assert again.history_floor == -1
    assert outbound(store, "s1", "e1", 5)  # ids of deleted events are free again


def test_delete_session_of_unknown_id_is_false(store):
    assert store.delete_session("ghost") is False


# -- expiry

def test_expiry(store):
    for name in ("a", "b", "c"):
        store.ensure_session(name)
    store.set_expiry("a", 100.0)
    store.set_expiry("b", 200.0)
    assert store.get_session("a").expires_at == 100.0
    assert store.expired_sessions(99.9) == []
    assert store.expired_sessions(100.0) == ["a"]  # at counts as expired
    assert sorted(store.expired_sessions(1e12)) == ["a", "b"]
    store.set_expiry("a", None)
    assert store.get_session("a").expires_at is None
    assert store.expired_sessions(1e12) == ["b"]
    store.delete_session("b")
    assert store.expired_sessions(1e12) == []


def test_set_expiry_of_unknown_session_does_nothing(store):
    store.set_expiry("ghost", 1.0)
    assert store.get_session("ghost") is None
    assert store.expired_sessions(1e12) == []


def test_reset_keeps_expiry(store):
    store.ensure_session("s1")
    store.set_expiry("s1", 50.0)
    assert store.reset_session("s1").expires_at == 50.0


def test_close_is_safe_to_repeat(store):
    store.ensure_session("s1")
    store.close()
    store.close()


# -- Postgres only

@pytest.fixture
def schema():
    name = unique_schema()
    yield name
    drop_schema(name)


def test_postgres_store_does_not_connect_until_used(schema):
    # Port 1 refuses connections: building the store must still succeed (it happens before fork).
    settings = load_settings({"POSTGRES_DSN": "postgresql://postgres@127.0.0.1:1/test?connect_timeout=1",
                              "POSTGRES_SCHEMA": schema})
    store = PostgresStore(settings)
    with pytest.raises(psycopg.OperationalError):
        store.check()
    store.close()


def test_postgres_store_rejects_a_schema_that_is_not_a_plain_identifier():
    for bad in ("", "a-b", "x; drop table y", '"q"', "1abc", "a" * 64):
        with pytest.raises(SettingsError, match="POSTGRES_SCHEMA"):
            PostgresStore(postgres_settings(bad))


def test_postgres_store_creates_its_schema_and_tables(schema):
    store = PostgresStore(postgres_settings(schema))
    try:
        assert schema in store.check()
    finally:
        store.close()
    with psycopg.connect(DSN, autocommit=True) as conn:
        tables = {row[0] for row in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,))}
        assert {"schema_migrations", "sessions", "session_events", "api_keys", "model_profiles",
                "model_scores"} <= tables
        versions = [row[0] for row in conn.execute(
            sql.SQL("SELECT version FROM {} ORDER BY version").format(
                sql.Identifier(schema, "schema_migrations")))]
        assert versions == [v for v, _, _ in load_migrations()]
        assert apply_migrations(conn, schema) == []  # applying again changes nothing
        key = conn.execute(
            "SELECT array_agg(a.attname ORDER BY a.attname) FROM pg_index i"
            " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
            " WHERE i.indrelid = %s::regclass AND i.indisprimary",
            (f"{schema}.model_profiles",)).fetchone()[0]
        assert key == ["deployment_mode", "role"]
        default = conn.execute(
            "SELECT column_default FROM information_schema.columns"
            " WHERE table_schema = %s AND table_name = 'model_profiles' AND column_name = 'temperature'",
            (schema,)).fetchone()[0]
        assert float(default) == 0.2


def test_postgres_stores_share_one_schema(schema):
    # Two stores on one schema stand for two gateway processes.
    first = PostgresStore(postgres_settings(schema))
    second = PostgresStore(postgres_settings(schema))
    try:
        first.ensure_session("s1", persona_id="p")
        assert outbound(first, "s1", "e1", 3)
        assert not outbound(second, "s1", "e1", 3)
        assert ids(second.outbound_after("s1", None)) == ["e1"]
        assert second.reset_session("s1").history_floor == 3
        assert first.history("s1") == []
    finally:
        first.close()
        second.close()
