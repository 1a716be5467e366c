"""Postgres under gevent and under concurrent start: slow queries overlap, migrations run once.

Both run in child processes: gevent must patch the standard library before anything else is imported,
and "several gateway processes start at once" is only real with several processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

ROOT = Path(__file__).resolve().parents[2]

from gateway.postgres_store import load_migrations

DSN = os.environ.get("POSTGRES_DSN") or "postgresql://postgres@127.0.0.1:5432/test"

SLOW_QUERIES = 8
SLOW_SECONDS = 0.5

GEVENT_SCRIPT = """
from gevent import monkey; monkey.patch_all()
import json, sys, time
import gevent
from gateway.postgres_store import PostgresStore
from gateway.settings import load_settings

dsn, schema, count, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
store = PostgresStore(load_settings({"POSTGRES_DSN": dsn, "POSTGRES_SCHEMA": schema,
                                     "POSTGRES_POOL_MIN": str(count), "POSTGRES_POOL_MAX": str(count)}))
store.check()  # migrations and the first connection are not what is measured
ticks = 0


def tick():
    global ticks
    while True:
        gevent.sleep(0.05)
        ticks += 1


def slow():
    with store.connection() as conn:
        conn.execute("SELECT pg_sleep(%s)", (seconds,))

ticker = gevent.spawn(tick)
started = time.monotonic()
gevent.joinall([gevent.spawn(slow) for _ in range(count)], raise_error=True)
elapsed = time.monotonic() - started
ticker.kill()
store.close()
print(json.dumps({"elapsed": elapsed, "ticks": ticks}))
"""

MIGRATE_SCRIPT = """
import json, sys
import psycopg
from gateway.postgres_store import apply_migrations

dsn, schema = sys.argv[1], sys.argv[2]
with psycopg.connect(dsn, autocommit=True) as conn:
    print("ready", flush=True)
    sys.stdin.readline()  # start together with the other processes
    print(json.dumps(apply_migrations(conn, schema)), flush=True)
"""


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


@pytest.fixture
def schema():
    name = f"gw_test_{uuid.uuid4().hex[:16]}"
    yield name
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def test_slow_queries_overlap_under_gevent(schema):
    result = subprocess.run(
        [sys.executable, "-c", GEVENT_SCRIPT, DSN, schema, str(SLOW_QUERIES), str(SLOW_SECONDS)],
        capture_output=True, text=True, timeout=60, cwd=ROOT, env=child_env())
    assert result.returncode == 0, result.stderr
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    # One after another they would take SLOW_QUERIES * SLOW_SECONDS (4 s); together about 0.5 s.
    assert SLOW_SECONDS <= measured["elapsed"] < SLOW_QUERIES * SLOW_SECONDS / 2, measured
    # The event loop kept running while the queries waited (a 50 ms ticker, about 10 ticks).
    assert measured["ticks"] >= 5, measured


def test_concurrent_migrations_apply_once(schema):
    versions = [version for version, _, _ in load_migrations()]
    processes = [
        subprocess.Popen([sys.executable, "-c", MIGRATE_SCRIPT, DSN, schema], cwd=ROOT, env=child_env(),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(6)]
    try:
        for process in processes:
            assert process.stdout.readline().strip() == "ready", process.stderr.read()
        for process in processes:
            process.stdin.write("go\n")
            process.stdin.flush()
        outputs = [process.communicate(timeout=60) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    assert [p.returncode for p in processes] == [0] * len(processes), [err for _, err in outputs]
    applied = sorted((json.loads(out.strip().splitlines()[-1]) for out, _ in outputs), key=len)
    assert applied == [[]] * (len(processes) - 1) + [versions]  # exactly one process migrated
    with psycopg.connect(DSN, autocommit=True) as conn:
        rows = conn.execute(sql.SQL("SELECT version, count(*) FROM {} GROUP BY version ORDER BY version")
                            .format(sql.Identifier(schema, "schema_migrations"))).fetchall()
    assert rows == [(version, 1) for version in versions]
