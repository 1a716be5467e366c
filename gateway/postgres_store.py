"""The session store in Postgres (psycopg 3 and a connection pool), with versioned migrations.

Every table lives in the schema named by POSTGRES_SCHEMA. The pool and the migrations start on first
use, never in the constructor: the store is built before gunicorn forks, and each worker process
needs its own connections. psycopg cooperates with gevent, so a slow query only blocks its greenlet.
"""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import class_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from .settings import Settings, SettingsError
from .store import Session, StoredEvent

__all__ = ["PostgresStore", "apply_migrations", "load_migrations", "check_schema_name"]

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# First key of the two-key advisory lock taken while migrating; the second is the schema's hash, so
# gateways using different schemas of one database do not wait for each other.
MIGRATION_LOCK = 0x50A01
POOL_TIMEOUT_SECONDS = 10.0
CHECK_TIMEOUT_SECONDS = 3.0
CONNECT_TIMEOUT_SECONDS = 5

SESSION_COLUMNS = "session_id, persona_id, created_at, updated_at, log_guid, expires_at, history_floor"
EVENT_COLUMNS = 'seq, session_id, event_id, direction, event, timestamp, partition, "offset"'


def _without_nul(value: Any) -> Any:
    """`value` with NUL characters replaced: jsonb cannot hold them, and an event must not be refused."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


def check_schema_name(schema: str) -> str:
    """Return `schema` when it is a plain SQL identifier, else raise `SettingsError`."""
    if not SCHEMA_NAME.fullmatch(schema or ""):
        raise SettingsError(
            f"POSTGRES_SCHEMA: expected a plain SQL identifier (letters, digits, _), got {schema!r}")
    return schema


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[tuple[int, str, str]]:
    """The migrations as (version, file name, SQL text), by version, from files named NNNN_name.sql."""
    found = []
    for path in sorted(directory.glob("*.sql")):
        version = int(path.name.split("_", 1)[0])
        found.append((version, path.name, path.read_text(encoding="utf-8")))
    versions = [version for version, _, _ in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a version in {directory}")
    return found


def apply_migrations(conn: psycopg.Connection, schema: str) -> list[int]:
    """Bring `schema` (on an idle connection) up to the newest migration; return the versions applied."""
    name = sql.Identifier(check_schema_name(schema))
    applied: list[int] = []
    # Several processes may start at once: the advisory lock, held until this transaction ends,
    # serializes them, and the applied versions are read under it, so each migration runs once.
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (MIGRATION_LOCK, schema))
        # Look before creating: CREATE SCHEMA IF NOT EXISTS needs the CREATE right even when it exists.
        if conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(name))
        conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(name))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())")
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for version, filename, text in load_migrations():
            if version in done:
                continue
            conn.execute(text)  # no parameters, so the file may hold several statements
            conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                         (version, filename))
            applied.append(version)
    return applied


class PostgresStore:
    """Sessions and history in Postgres, shared by every gateway process (the real mode)."""

    kind = "postgres"

    def __init__(self, settings: Settings) -> None:
        if not settings.postgres_dsn:
            raise SettingsError("POSTGRES_DSN: required by the Postgres store")
        self.settings = settings
        self.schema = check_schema_name(settings.postgres_schema)
        self.retention = settings.history_retention_events
        self._sessions = sql.Identifier(self.schema, "sessions")
        self._events = sql.Identifier(self.schema, "session_events")
        self._lock = threading.Lock()
        self._pool: ConnectionPool | None = None
        self._pool_pid: int | None = None
        self._migrated = False

    # -- connections

    def _get_pool(self, timeout: float | None = None) -> ConnectionPool:
        with self._lock:
            if self._pool is not None and self._pool_pid != os.getpid():
                # Built before a fork: the parent owns those sockets, so leave them alone.
                self._pool = None
            if self._pool is None:
                self._pool = self._new_pool()
                self._pool_pid = os.getpid()
            if not self._migrated:
                with self._pool.connection(timeout=timeout) as conn:
                    apply_migrations(conn, self.schema)
                self._migrated = True
            return self._pool

    def _new_pool(self) -> ConnectionPool:
        dsn = self.settings.postgres_dsn
        kwargs: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in conninfo_to_dict(dsn):
            kwargs["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
        min_size = self.settings.postgres_pool_min
        pool = ConnectionPool(
            dsn, min_size=min_size, max_size=max(self.settings.postgres_pool_max, min_size),
            kwargs=kwargs, open=False, name="gateway-store", timeout=POOL_TIMEOUT_SECONDS,
            # A connection broken by a server restart is replaced instead of failing a request.
            check=ConnectionPool.check_connection)
        pool.open(wait=False)
        return pool

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[psycopg.Connection]:
        """A pooled autocommit connection to the migrated schema, for queries of other features."""
        with self._get_pool(timeout).connection(timeout=timeout) as conn:
            yield conn

    def table(self, name: str) -> sql.Identifier:
        """The schema-qualified name of one of the store's tables, for composing queries."""
        return sql.Identifier(self.schema, name)

    def _sql(self, text: str) -> sql.Composed:
        return sql.SQL(text).format(sessions=self._sessions, events=self._events)

    # -- sessions

    def ensure_session(self, session_id: str, *, persona_id: str | None = None) -> Session:
        now = time.time()
        query = self._sql(
            "INSERT INTO {sessions} (session_id, persona_id, created_at, updated_at, log_guid)"
            " VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT (session_id) DO UPDATE SET"
            " persona_id = COALESCE(EXCLUDED.persona_id, {sessions}.persona_id),"
            " updated_at = EXCLUDED.updated_at"
            f" RETURNING {SESSION_COLUMNS}")
        with self.connection() as conn:
            cur = conn.cursor(row_factory=class_row(Session))
            return cur.execute(query, (session_id, persona_id, now, now, str(uuid.uuid4()))).fetchone()

    def get_session(self, session_id: str) -> Session | None:
        query = self._sql(f"SELECT {SESSION_COLUMNS} FROM {{sessions}} WHERE session_id = %s")
        with self.connection() as conn:
            cur = conn.cursor(row_factory=class_row(Session))
            return cur.execute(query, (session_id,)).fetchone()

    def delete_session(self, session_id: str) -> bool:
        # The session's events go with it (ON DELETE CASCADE).
        with self.connection() as conn:
            cur = conn.execute(self._sql("DELETE FROM {sessions} WHERE session_id = %s"), (session_id,))
            return cur.rowcount > 0

    def reset_session(self, session_id: str, *, floor: int | None = None) -> Session | None:
        with self.connection() as conn, conn.transaction():
            # Locking the session row orders this against record_event, so no event slips past a reset.
            row = conn.execute(
                self._sql("SELECT history_floor FROM {sessions} WHERE session_id = %s FOR UPDATE"),
                (session_id,)).fetchone()
            if row is None:
                return None
            dropped_max = conn.execute(self._sql(
                'WITH gone AS (DELETE FROM {events} WHERE session_id = %s RETURNING "offset")'
                ' SELECT max("offset") FROM gone'), (session_id,)).fetchone()[0]
            new_floor = max(v for v in (row[0], dropped_max, floor) if v is not None)
            cur = conn.cursor(row_factory=class_row(Session))
            return cur.execute(self._sql(
                "UPDATE {sessions} SET history_floor = %s, log_guid = %s, updated_at = %s,"
                f" event_count = 0 WHERE session_id = %s RETURNING {SESSION_COLUMNS}"),
                (new_floor, str(uuid.uuid4()), time.time(), session_id)).fetchone()

    def set_expiry(self, session_id: str, expires_at: float | None) -> None:
        with self.connection() as conn:
            conn.execute(self._sql("UPDATE {sessions} SET expires_at = %s WHERE session_id = %s"),
                         (expires_at, session_id))

    def expired_sessions(self, now: float) -> list[str]:
        query = self._sql("SELECT session_id FROM {sessions} WHERE expires_at <= %s"
                          " ORDER BY expires_at, session_id")
        with self.connection() as conn:
            return [row[0] for row in conn.execute(query, (now,))]

    # -- history

    def record_event(self, session_id: str, event: Mapping[str, Any], *, direction: str,
                     timestamp: float, partition: int | None = None, offset: int | None = None) -> bool:
        event_id = str(event.get("event_id") or "")
        if not event_id:
            return False
        with self.connection() as conn, conn.transaction():
            # The row lock serializes writers of one session, which keeps event_count and the floor exact.
            row = conn.execute(self._sql(
                "SELECT history_floor, event_count FROM {sessions} WHERE session_id = %s FOR UPDATE"),
                (session_id,)).fetchone()
            if row is None:
                return False
            floor, count = row
            if offset is not None and offset <= floor:
                return False  # cleared by a reset (or trimmed) already
            inserted = conn.execute(self._sql(
                'INSERT INTO {events} (session_id, event_id, direction, event, timestamp, partition, "offset")'
                " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING RETURNING seq"),
                (session_id, event_id, direction, Jsonb(_without_nul(dict(event))), timestamp, partition, offset),
            ).fetchone()
            if inserted is None:
                return False
            count += 1
            if count > self.retention:
                dropped_max = conn.execute(self._sql(
                    "WITH gone AS (DELETE FROM {events} WHERE seq IN ("
                    "  SELECT seq FROM {events} WHERE session_id = %s ORDER BY seq LIMIT %s)"
                    ' RETURNING "offset") SELECT max("offset") FROM gone'),
                    (session_id, count - self.retention)).fetchone()[0]
                count = self.retention
                if dropped_max is not None:
                    floor = max(floor, dropped_max)
            conn.execute(self._sql(
                "UPDATE {sessions} SET event_count = %s, history_floor = %s WHERE session_id = %s"),
                (count, floor, session_id))
            return True

    def outbound_after(self, session_id: str, after: int | None) -> list[StoredEvent]:
        where = 'session_id = %s AND "offset" IS NOT NULL'
        params: tuple[Any, ...] = (session_id,)
        if after is not None:
            where, params = where + ' AND "offset" > %s', (session_id, after)
        query = self._sql(f'SELECT {EVENT_COLUMNS} FROM {{events}} WHERE {where} ORDER BY "offset", seq')
        with self.connection() as conn:
            return conn.cursor(row_factory=class_row(StoredEvent)).execute(query, params).fetchall()

    def history(self, session_id: str) -> list[StoredEvent]:
        query = self._sql(
            f"SELECT {EVENT_COLUMNS} FROM {{events}} WHERE session_id = %s ORDER BY timestamp, seq")
        with self.connection() as conn:
            return conn.cursor(row_factory=class_row(StoredEvent)).execute(query, (session_id,)).fetchall()

    # -- recorder progress

    def recorder_position(self, topic: str, partition: int) -> int:
        query = sql.SQL("SELECT next_offset FROM {} WHERE topic = %s AND partition = %s").format(
            self.table("recorder_positions"))
        with self.connection() as conn:
            row = conn.execute(query, (topic, partition)).fetchone()
        return row[0] if row else 0

    def set_recorder_position(self, topic: str, partition: int, offset: int) -> None:
        query = sql.SQL(
            "INSERT INTO {table} AS p (topic, partition, next_offset) VALUES (%s, %s, %s)"
            " ON CONFLICT (topic, partition) DO UPDATE SET"
            " next_offset = GREATEST(p.next_offset, EXCLUDED.next_offset), updated_at = now()").format(
            table=self.table("recorder_positions"))
        with self.connection() as conn:
            conn.execute(query, (topic, partition, offset))

    # -- health and lifecycle

    def check(self) -> str:
        with self.connection(timeout=CHECK_TIMEOUT_SECONDS) as conn:
            conn.execute("SELECT 1").fetchone()
            version = (conn.info.parameter_status("server_version") or "?").split()[0]
        return f"postgres {version}, schema {self.schema}"

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None and self._pool_pid == os.getpid():
            pool.close()
