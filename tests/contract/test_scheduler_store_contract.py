"""The scheduler's PostgreSQL commit (pipelined, or by COPY for big batches): the same rows as
the portable path, atomic, and back on its feet after its connection is cut."""

from __future__ import annotations

import psycopg
import pytest

from common.db import create_engine
from services.scheduler import pg_store, sql_store
from services.scheduler.convert import record_from_proto, record_from_row
from services.scheduler.model import JobRecord, TaskRecord, TaskState
from services.scheduler.pg_store import PostgresTaskStore, _mutable
from switchyard.v1 import types_pb2


def record(task_id: str, job_id: str = "job_1", key: str = "") -> TaskRecord:
    spec = types_pb2.TaskSpec(category="noop", idempotency_key=key)
    task = types_pb2.Task(id=task_id, job_id=job_id, tenant="acme", user="u", category="noop", spec=spec)
    task.eligibility = types_pb2.ELIGIBILITY_CPU_ONLY
    task.classification_rule = "rule-1"
    return record_from_proto(task, 100.0)


@pytest.fixture(params=["pipelined", "copy"])
async def store(pg_url: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """Both write paths: every statement pipelined, or every batch by COPY."""
    monkeypatch.setattr(pg_store, "COPY_MIN", 1 if request.param == "copy" else 10**9)
    s = PostgresTaskStore(create_engine(pg_url, "scheduler"), record_from_row, pg_url, "scheduler")
    yield s
    await s.close()


def test_update_columns_follow_the_portable_order() -> None:
    r = record("t1")
    r.state, r.attempt, r.worker_id, r.result = TaskState.FAILED, 2, "cpu-1", b"x"
    r.queued_at, r.assigned_at, r.started_at, r.finished_at = 1.0, 2.0, 3.0, 4.0
    r.error_reason, r.error_message = "BOOM", "it broke"
    assert _mutable(r) == tuple(sql_store._mutable(r).values())


async def test_inserts_jobs_and_updates_land_in_one_commit(store: PostgresTaskStore) -> None:
    a, b = record("t1", key="k1"), record("t2")
    await store.commit([a, b], [JobRecord("job_1", "acme", 100.0)], [])
    a.state, a.attempt, a.worker_id, a.finished_at, a.result = TaskState.SUCCEEDED, 1, "cpu-1", 105.5, b"ok"
    # the job row again (a later submit of the same job) is no conflict
    await store.commit([record("t3")], [JobRecord("job_1", "acme", 101.0)], [a])
    got = {r.id: r for r in await store.get(["t1", "t2", "t3"])}
    assert set(got) == {"t1", "t2", "t3"}
    t1 = got["t1"]
    assert (t1.state, t1.attempt, t1.worker_id, t1.finished_at, t1.result) == (
        TaskState.SUCCEEDED,
        1,
        "cpu-1",
        105.5,
        b"ok",
    )
    assert (t1.idempotency_key, t1.rule, t1.spec) == ("k1", "rule-1", a.spec)
    assert got["t2"].state is TaskState.QUEUED
    job = await store.get_job("acme", "job_1")
    assert job is not None and job.created_at == 100.0


async def test_a_refused_commit_stores_nothing_and_the_next_one_works(store: PostgresTaskStore) -> None:
    await store.commit([record("t1")], [JobRecord("job_1", "acme", 100.0)], [])
    with pytest.raises(psycopg.errors.UniqueViolation):
        await store.commit([record("t2"), record("t1")], [], [])
    assert [r.id for r in await store.get(["t1", "t2"])] == ["t1"]
    await store.commit([record("t2")], [], [])
    assert sorted(r.id for r in await store.get(["t1", "t2"])) == ["t1", "t2"]


async def test_a_cut_connection_fails_one_commit_and_the_next_reconnects(
    store: PostgresTaskStore, pg_url: str
) -> None:
    await store.commit([record("t1")], [JobRecord("job_1", "acme", 100.0)], [])
    conn = store._conn
    assert conn is not None
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))
    with pytest.raises(psycopg.OperationalError):
        await store.commit([record("t2")], [], [])
    await store.commit([record("t2")], [], [])
    assert sorted(r.id for r in await store.get(["t1", "t2"])) == ["t1", "t2"]
