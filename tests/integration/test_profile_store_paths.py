"""On PostgreSQL the fast write path (COPY + pipelined upserts) and the portable one
(SQLAlchemy Core, SQLite's path) leave exactly the same rows in every table."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from common.db import create_engine
from services.profile_store.model import Metric, ModelRef, Outcome, Precision
from services.profile_store.sql_store import SqlProfileStore
from tests.conftest import PG_ADMIN, _pg_url

TABLES = {
    "metric_samples": "task_id, attempt",
    "profiles": "key_id",
    "worker_profiles": "key_id, worker_id",
    "resources": "worker_id",
    "tenant_usage": "tenant",
}


@pytest.fixture
def two_databases(pg_template: str) -> Iterator[tuple[str, str]]:
    names = [f"switchyard_test_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        for name in names:
            admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    yield _pg_url(names[0]), _pg_url(names[1])
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        for name in names:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def metric(i: int) -> Metric:
    """Metric i: resends every 130 (same task, same attempt), other values each time."""
    finished = datetime(2030, 1, 1, tzinfo=UTC) + timedelta(microseconds=i * 1001)
    return Metric(
        task_id=f"task-{i % 130}", attempt=1 + i % 2, worker_id=f"w{i % 5}", device_model="ab"[i % 2],
        model=ModelRef(name=f"m{i % 3}", version="v1"), precision=(Precision.FP32, Precision.INT8)[i % 2],
        batch_size=i % 40, category="inference", tenant=f"tenant-{i % 4}",
        queue_wait_s=None if i % 3 else i / 7, execution_time_s=None if i % 11 == 0 else 0.001 * (i % 97 + 1),
        items_per_second=float(i % 6), gpu_utilization=(i % 10) / 10, cpu_utilization=0.25,
        memory_bytes=i << 20, gpu_power_watts=0.0 if i % 2 else 123.456,
        outcome=Outcome.FAILED if i % 13 == 0 else Outcome.SUCCEEDED, finished_at=None if i % 4 else finished,
    )  # fmt: skip


def metrics(start: int, n: int) -> list[Metric]:
    return [metric(i) for i in range(start, start + n)]


def rows(url: str) -> dict[str, list[tuple[object, ...]]]:
    with psycopg.connect(url, options="-c search_path=profile_store") as conn:
        return {
            t: conn.execute(f"SELECT * FROM {t} ORDER BY {order}").fetchall() for t, order in TABLES.items()
        }


# The fast writer's upsert statements: as they are, and split into many small ones.
STATEMENT_LIMITS = [None, (3, 40)]


@pytest.mark.parametrize("limits", STATEMENT_LIMITS, ids=["usual", "split"])
async def test_fast_and_portable_writes_leave_the_same_rows(
    two_databases: tuple[str, str], limits: tuple[int, int] | None
) -> None:
    now = datetime(2030, 6, 1, tzinfo=UTC)
    stores = [
        SqlProfileStore(create_engine(url, "profile_store"), clock=lambda: now, portable_writes=portable)
        for url, portable in zip(two_databases, (False, True), strict=True)
    ]
    if limits is not None:
        writer: Any = stores[0]._writer
        writer._ROWS_PER_INSERT, writer._PARAMS_PER_STATEMENT = limits
    batches = ((0, 70), (50, 120), (160, 1), (0, 30))  # resends within and across batches
    try:
        for start, n in batches:
            results = [await store.ingest(metrics(start, n)) for store in stores]
            assert results[0] == results[1]
            now += timedelta(minutes=7)
    finally:
        for store in stores:
            await store.close()
    fast, portable = (rows(url) for url in two_databases)
    unique = {(m.task_id, m.attempt) for start, n in batches for m in metrics(start, n)}
    assert len(fast["metric_samples"]) == len(unique) and len(fast["profiles"]) > 10
    assert fast == portable


async def test_an_ingest_connection_cut_between_ingests_is_replaced(pg_url: str) -> None:
    store = SqlProfileStore(create_engine(pg_url, "profile_store"))
    try:
        assert list((await store.ingest(metrics(0, 10))).duplicates) == [False] * 10
        name = pg_url.rpartition("/")[2]
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            cut = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
            ).fetchall()
        assert cut, "the store held a connection"
        # The ingest after the cut goes through on a new connection; resends stay duplicates.
        result = await store.ingest(metrics(5, 10))
        assert list(result.duplicates) == [True] * 5 + [False] * 5
    finally:
        await store.close()
    assert len(rows(pg_url)["metric_samples"]) == 15
