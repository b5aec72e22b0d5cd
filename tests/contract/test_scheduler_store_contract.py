"""The scheduler's TaskStore contract (services/scheduler/store.py) on every store and path:
SQLite, PostgreSQL through SQLAlchemy, and PostgreSQL's own commit (pipelined, or by COPY
for big batches). Then what only the held PostgreSQL connection has to survive."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from common.db import create_engine, upgrade
from services.scheduler import pg_store, sql_store
from services.scheduler.convert import record_from_proto, record_from_row
from services.scheduler.model import JobRecord, TaskRecord, TaskState
from services.scheduler.pg_store import PostgresTaskStore
from services.scheduler.sql_store import SqlTaskStore
from services.scheduler.sql_store import mutable_values as _mutable
from switchyard.v1 import types_pb2

MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "scheduler" / "migrations"
REFUSED = (sa.exc.IntegrityError, psycopg.errors.UniqueViolation)


def record(task_id: str, job_id: str = "job_1", key: str = "", tenant: str = "acme") -> TaskRecord:
    spec = types_pb2.TaskSpec(category="noop", idempotency_key=key)
    task = types_pb2.Task(id=task_id, job_id=job_id, tenant=tenant, user="u", category="noop", spec=spec)
    task.eligibility = types_pb2.ELIGIBILITY_CPU_ONLY
    task.classification_rule = "rule-1"
    return record_from_proto(task, 100.0)


@pytest.fixture(params=["sqlite", "postgres-sqlalchemy", "postgres-pipelined", "postgres-copy"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[SqlTaskStore]:
    kind = request.param
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'scheduler.db'}"
        upgrade(url, "scheduler", MIGRATIONS)
    else:
        url = str(request.getfixturevalue("pg_url"))
    monkeypatch.setattr(pg_store, "COPY_MIN", 1 if kind == "postgres-copy" else 10**9)
    engine = create_engine(url, "scheduler")
    s = (
        PostgresTaskStore(engine, record_from_row, url, "scheduler")
        if kind in ("postgres-pipelined", "postgres-copy")
        else SqlTaskStore(engine, record_from_row)
    )
    yield s
    await s.close()


def test_update_columns_follow_the_portable_order() -> None:
    r = record("t1")
    r.state, r.attempt, r.worker_id, r.result = TaskState.FAILED, 2, "cpu-1", b"x"
    r.queued_at, r.assigned_at, r.started_at, r.finished_at = 1.0, 2.0, 3.0, 4.0
    r.error_reason, r.error_message = "BOOM", "it broke"
    assert _mutable(r) == tuple(sql_store._mutable(r).values())


async def test_inserts_jobs_and_updates_land_in_one_commit(store: SqlTaskStore) -> None:
    a, b = record("t1", key="k1"), record("t2")
    await store.commit([a, b], [JobRecord("job_1", "acme", 100.0)], [])
    a.state, a.attempt, a.worker_id, a.finished_at, a.result = TaskState.SUCCEEDED, 1, "cpu-1", 105.5, b"ok"
    a.error_reason, a.error_message = "NOTE", "a message"
    # the job row again (a later submit of the same job) is no conflict
    await store.commit([record("t3")], [JobRecord("job_1", "acme", 101.0)], [a])
    got = {r.id: r for r in await store.get(["t1", "t2", "t3"])}
    assert set(got) == {"t1", "t2", "t3"}
    t1 = got["t1"]
    assert _mutable(t1) == _mutable(a)
    assert (t1.idempotency_key, t1.rule, t1.spec, t1.submitted_at) == ("k1", "rule-1", a.spec, 100.0)
    assert got["t2"].state is TaskState.QUEUED and got["t2"].idempotency_key is None
    job = await store.get_job("acme", "job_1")
    assert job is not None and job.created_at == 100.0
    assert await store.get_job("globex", "job_1") is None


async def test_an_insert_and_its_own_update_in_one_commit(store: SqlTaskStore) -> None:
    a = record("t1")
    a.state, a.attempt, a.worker_id = TaskState.RUNNING, 1, "cpu-1"
    await store.commit([a], [JobRecord("job_1", "acme", 100.0)], [a])
    (got,) = await store.get(["t1"])
    assert (got.state, got.worker_id) == (TaskState.RUNNING, "cpu-1")


async def test_a_refused_commit_stores_nothing_and_the_next_one_works(store: SqlTaskStore) -> None:
    first = record("t1")
    await store.commit([first], [JobRecord("job_1", "acme", 100.0)], [])
    first.state = TaskState.SUCCEEDED
    with pytest.raises(REFUSED):
        await store.commit([record("t2"), record("t1")], [JobRecord("job_2", "acme", 1.0)], [first])
    assert [r.id for r in await store.get(["t1", "t2"])] == ["t1"]
    assert (await store.get(["t1"]))[0].state is TaskState.QUEUED
    assert await store.get_job("acme", "job_2") is None
    await store.commit([record("t2")], [], [first])
    got = {r.id: r.state for r in await store.get(["t1", "t2"])}
    assert got == {"t1": TaskState.SUCCEEDED, "t2": TaskState.QUEUED}


async def test_reads_idempotency_listing_counts_and_unfinished(store: SqlTaskStore) -> None:
    rows = [record(f"t{i}", key=f"k{i}" if i < 2 else "") for i in range(5)]
    rows.append(record("t9", job_id="job_2", tenant="globex", key="k0"))
    jobs = [JobRecord("job_1", "acme", 100.0), JobRecord("job_2", "globex", 100.0)]
    await store.commit(rows, jobs, [])
    rows[0].state, rows[1].state = TaskState.SUCCEEDED, TaskState.RUNNING
    await store.commit([], [], rows[:2])
    assert {r.id for r in await store.find_idempotent("acme", ["k0", "k1", "k7"])} == {"t0", "t1"}
    assert [r.id for r in await store.find_idempotent("globex", ["k0"])] == ["t9"]
    page = await store.list_tasks(tenant="acme", job_id="job_1", states=(), limit=2, after_id=None)
    rest = await store.list_tasks(tenant="acme", job_id=None, states=(), limit=10, after_id=page[-1].id)
    assert [r.id for r in page + rest] == ["t0", "t1", "t2", "t3", "t4"]
    queued = await store.list_tasks(
        tenant="acme", job_id=None, states=(TaskState.QUEUED,), limit=10, after_id=None
    )
    assert [r.id for r in queued] == ["t2", "t3", "t4"]
    assert await store.job_state_counts("job_1") == {
        TaskState.SUCCEEDED: 1,
        TaskState.RUNNING: 1,
        TaskState.QUEUED: 3,
    }
    assert [r.id for r in await store.load_unfinished()] == ["t1", "t2", "t3", "t4", "t9"]


async def test_a_cut_connection_is_replaced_within_the_commit(pg_url: str) -> None:
    store = PostgresTaskStore(create_engine(pg_url, "scheduler"), record_from_row, pg_url, "scheduler")
    try:
        await store.commit([record("t1")], [JobRecord("job_1", "acme", 100.0)], [])
        conn = store._conn
        assert conn is not None
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))
        second = record("t2")
        second.state = TaskState.SUCCEEDED
        await store.commit([second], [JobRecord("job_2", "acme", 1.0)], [second])  # no error
        assert store._conn is not conn
        got = {r.id: r.state for r in await store.get(["t1", "t2"])}
        assert got == {"t1": TaskState.QUEUED, "t2": TaskState.SUCCEEDED}
    finally:
        await store.close()


async def test_the_retry_finds_what_a_landed_commit_wrote(pg_url: str) -> None:
    """A commit whose COMMIT landed before its connection broke is retried as a whole: the
    retry must take its own rows as already there, yet still refuse another key holder."""
    store = PostgresTaskStore(create_engine(pg_url, "scheduler"), record_from_row, pg_url, "scheduler")
    try:
        rows = [record("t1", key="k1"), record("t2")]
        job = [(j.id, j.tenant, j.created_at) for j in [JobRecord("job_1", "acme", 100.0)]]
        task_rows = [pg_store.insert_row(r) for r in rows]
        rows[1].state = TaskState.RUNNING
        updates = [pg_store.update_row(rows[1])]
        await store._transaction(job, task_rows, updates)
        await store._transaction(job, task_rows, updates, retry=True)
        got = {r.id: r.state for r in await store.get(["t1", "t2"])}
        assert got == {"t1": TaskState.QUEUED, "t2": TaskState.RUNNING}
        with pytest.raises(psycopg.errors.UniqueViolation):  # same key, another task
            await store._transaction([], [pg_store.insert_row(record("t3", key="k1"))], [], retry=True)
    finally:
        await store.close()
