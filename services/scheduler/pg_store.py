"""PostgreSQL's fast path for the group commit: one pipelined round trip per transaction.

Through SQLAlchemy a commit costs a pool check-out (with its liveness ping), a BEGIN, one
round trip per statement and the COMMIT: six waits on the server for an insert with its
job and an update, most of a single task's submit latency. Here the commit loop keeps one
psycopg connection of its own and sends BEGIN, the job and task inserts, the updates and
COMMIT in one pipeline, so a transaction costs one round trip and the fsync. Reads stay on
the SQLAlchemy engine (`SqlTaskStore`): they run beside the commit loop, not through it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from services.scheduler.model import JobRecord, TaskRecord
from services.scheduler.sql_store import MUTABLE, SqlTaskStore

log = logging.getLogger(__name__)

INSERT_COLUMNS = (
    "id",
    "job_id",
    "tenant",
    "user_name",
    "category",
    "eligibility",
    "priority_class",
    "classification_rule",
    "spec",
    "idempotency_key",
    "submitted_at",
    *MUTABLE,
)


def _placeholders(n: int) -> str:
    return ", ".join(["%s"] * n)


JOB_SQL = "INSERT INTO jobs (id, tenant, created_at) VALUES (%s, %s, %s) ON CONFLICT (id) DO NOTHING"
TASK_SQL = f"INSERT INTO tasks ({', '.join(INSERT_COLUMNS)}) VALUES ({_placeholders(len(INSERT_COLUMNS))})"
UPDATE_SQL = f"UPDATE tasks SET {', '.join(f'{c} = %s' for c in MUTABLE)} WHERE id = %s"


def _mutable(r: TaskRecord) -> tuple[Any, ...]:
    """The columns of MUTABLE, in its order (a test holds the two together)."""
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


def insert_row(r: TaskRecord) -> tuple[Any, ...]:
    """A new task's row in INSERT_COLUMNS order."""
    head = (r.id, r.job_id, r.tenant, r.user, r.category, r.eligibility, r.priority_class, r.rule)
    return (*head, r.spec, r.idempotency_key, r.submitted_at, *_mutable(r))


def update_row(r: TaskRecord) -> tuple[Any, ...]:
    """The mutable columns of a task, then its id (UPDATE_SQL's parameters)."""
    return (*_mutable(r), r.id)


def conninfo(url: str) -> str:
    """A libpq connection string from the service's database URL (any SQLAlchemy driver)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresTaskStore(SqlTaskStore):
    """`SqlTaskStore` whose `commit` is one pipelined transaction on a connection of its own."""

    def __init__(
        self, engine: AsyncEngine, build: Callable[[sa.Row[Any]], TaskRecord], url: str, schema: str
    ) -> None:
        super().__init__(engine, build)
        self._conninfo = conninfo(url)
        self._options = f"-c search_path={schema}"
        self._conn: psycopg.AsyncConnection[Any] | None = None

    async def commit(
        self, inserts: Sequence[TaskRecord], jobs: Sequence[JobRecord], updates: Sequence[TaskRecord]
    ) -> None:
        # The rows are taken before the first await (the records are live; see TaskStore).
        job_rows = [(j.id, j.tenant, j.created_at) for j in jobs]
        task_rows = [insert_row(r) for r in inserts]
        update_rows = [update_row(r) for r in updates]
        conn = await self._connection()
        try:
            async with conn.pipeline(), conn.transaction(), conn.cursor() as cur:
                if job_rows:
                    await cur.executemany(JOB_SQL, job_rows)
                if task_rows:
                    await cur.executemany(TASK_SQL, task_rows)
                if update_rows:
                    await cur.executemany(UPDATE_SQL, update_rows)
        except psycopg.OperationalError:
            # The connection may be gone (a server restart, a network cut): the next commit
            # opens a new one. The caller retries; nothing of this transaction is stored.
            await self._drop()
            raise

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(
                self._conninfo, autocommit=True, options=self._options
            )
        return self._conn

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            try:
                await conn.close()
            except psycopg.Error as exc:  # already broken: nothing left to release
                log.debug("closing a broken commit connection: %r", exc)

    async def close(self) -> None:
        await self._drop()
        await super().close()
