"""TaskStore on SQLAlchemy 2 (PostgreSQL or SQLite, the same code)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from services.scheduler.model import JobRecord, TaskRecord, TaskState
from services.scheduler.schema import jobs, tasks

MUTABLE = (
    "state",
    "attempt",
    "worker_id",
    "queued_at",
    "assigned_at",
    "started_at",
    "finished_at",
    "result",
    "error_reason",
    "error_message",
)


def _row(record: TaskRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "job_id": record.job_id,
        "tenant": record.tenant,
        "user_name": record.user,
        "category": record.category,
        "eligibility": record.eligibility,
        "priority_class": record.priority_class,
        "classification_rule": record.rule,
        "spec": record.spec,
        "idempotency_key": record.idempotency_key,
        "submitted_at": record.submitted_at,
        **_mutable(record),
    }


def mutable_values(r: TaskRecord) -> tuple[Any, ...]:
    """The columns of MUTABLE, in its order."""
    return (
        int(r.state),
        r.attempt,
        r.worker_id,
        r.queued_at,
        r.assigned_at,
        r.started_at,
        r.finished_at,
        r.result,
        r.error_reason,
        r.error_message,
    )


def _mutable(record: TaskRecord) -> dict[str, Any]:
    return dict(zip(MUTABLE, mutable_values(record), strict=True))


def _insert_new(dialect: str, table: sa.Table) -> Any:
    """INSERT … ON CONFLICT DO NOTHING (a job row may already exist from an earlier call)."""
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


class SqlTaskStore:
    def __init__(self, engine: AsyncEngine, build: Callable[[sa.Row[Any]], TaskRecord]) -> None:
        self.engine = engine
        self._build = build
        self._update = (
            tasks.update()
            .where(tasks.c.id == sa.bindparam("b_id"))
            .values({name: sa.bindparam(f"b_{name}") for name in MUTABLE})
        )
        self._compiled: dict[str, tuple[str, tuple[str, ...] | None]] = {}

    async def commit(
        self, inserts: Sequence[TaskRecord], job_rows: Sequence[JobRecord], updates: Sequence[TaskRecord]
    ) -> None:
        """Inserts and updates in one transaction (the group commit)."""
        # Every row is taken now, before the first await: the records are live and may move
        # on while the transaction runs (the committer relies on this snapshot).
        params = [{"b_id": r.id, **{f"b_{k}": v for k, v in _mutable(r).items()}} for r in updates]
        new_rows = [_row(r) for r in inserts]
        job_params = [{"id": j.id, "tenant": j.tenant, "created_at": j.created_at} for j in job_rows]
        async with self.engine.begin() as conn:
            if job_params:
                await conn.execute(_insert_new(conn.dialect.name, jobs), job_params)
            if new_rows:
                await conn.execute(tasks.insert(), new_rows)
            if params:
                sql, order = self._driver_update(conn.dialect)
                rows = params if order is None else [tuple(p[name] for name in order) for p in params]
                # Straight to the driver's executemany: the statement is compiled once per
                # dialect instead of SQLAlchemy processing every row's parameters each time.
                await conn.exec_driver_sql(sql, rows)

    def _driver_update(self, dialect: sa.Dialect) -> tuple[str, tuple[str, ...] | None]:
        """The UPDATE in the driver's parameter style, and the bind order if positional."""
        cached = self._compiled.get(dialect.name)
        if cached is None:
            compiled = self._update.compile(dialect=dialect)
            order = tuple(compiled.positiontup or ()) if compiled.positional else None
            cached = self._compiled[dialect.name] = (compiled.string, order)
        return cached

    async def _select(self, query: sa.Select[Any]) -> list[TaskRecord]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [self._build(row) for row in rows]

    async def get(self, task_ids: Sequence[str]) -> list[TaskRecord]:
        if not task_ids:
            return []
        return await self._select(sa.select(tasks).where(tasks.c.id.in_(list(task_ids))))

    async def find_idempotent(self, tenant: str, keys: Sequence[str]) -> list[TaskRecord]:
        if not keys:
            return []
        query = sa.select(tasks).where(tasks.c.tenant == tenant, tasks.c.idempotency_key.in_(list(keys)))
        return await self._select(query)

    async def list_tasks(
        self,
        *,
        tenant: str,
        job_id: str | None,
        states: Sequence[TaskState],
        limit: int,
        after_id: str | None,
    ) -> list[TaskRecord]:
        query = sa.select(tasks).where(tasks.c.tenant == tenant)
        if job_id:
            query = query.where(tasks.c.job_id == job_id)
        if states:
            query = query.where(tasks.c.state.in_([int(s) for s in states]))
        if after_id:
            query = query.where(tasks.c.id > after_id)
        return await self._select(query.order_by(tasks.c.id).limit(limit))

    async def get_job(self, tenant: str, job_id: str) -> JobRecord | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(sa.select(jobs).where(jobs.c.id == job_id, jobs.c.tenant == tenant))
            ).first()
        return None if row is None else JobRecord(row.id, row.tenant, row.created_at)

    async def job_state_counts(self, job_id: str) -> dict[TaskState, int]:
        query = (
            sa.select(tasks.c.state, sa.func.count()).where(tasks.c.job_id == job_id).group_by(tasks.c.state)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {TaskState(state): int(count) for state, count in rows}

    async def load_unfinished(self) -> list[TaskRecord]:
        query = sa.select(tasks).where(tasks.c.state < int(TaskState.SUCCEEDED)).order_by(tasks.c.id)
        return await self._select(query)

    async def close(self) -> None:
        await self.engine.dispose()
