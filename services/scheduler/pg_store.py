"""PostgreSQL's fast path for the group commit: one pipelined round trip per transaction.

Through SQLAlchemy a commit costs a pool check-out (with its liveness ping), a BEGIN, one
round trip per statement and the COMMIT: six waits on the server for an insert with its
job and an update, most of a single task's submit latency. Here the commit loop keeps one
psycopg connection of its own and sends BEGIN, the job and task inserts, the updates and
COMMIT in one pipeline, so a transaction costs one round trip and the fsync. A commit with
many new tasks or many updates (a throughput run) sends those by COPY instead, the updates
through a temporary table and one UPDATE ... FROM: a few more round trips, a fraction of
the CPU per row. Reads stay on the SQLAlchemy engine (`SqlTaskStore`): they run beside the
commit loop, not through it.
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
from services.scheduler.sql_store import MUTABLE, SqlTaskStore, mutable_values

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


# A kind of row this many or more per commit goes by COPY: three more round trips, and a
# fraction of the CPU that a pipelined INSERT or UPDATE per row costs.
COPY_MIN = 64
JOB_SQL = "INSERT INTO jobs (id, tenant, created_at) VALUES (%s, %s, %s) ON CONFLICT (id) DO NOTHING"
TASK_SQL = f"INSERT INTO tasks ({', '.join(INSERT_COLUMNS)}) VALUES ({_placeholders(len(INSERT_COLUMNS))})"
# A commit retried on a new connection: should the first COMMIT have landed after all, its
# tasks are there already (jobs are ON CONFLICT DO NOTHING anyway; updates write whole rows).
RETRY_TASK_SQL = f"{TASK_SQL} ON CONFLICT (id) DO NOTHING"
UPDATE_SQL = f"UPDATE tasks SET {', '.join(f'{c} = %s' for c in MUTABLE)} WHERE id = %s"
TASK_COPY = f"COPY tasks ({', '.join(INSERT_COLUMNS)}) FROM STDIN"
# Many updates: COPY into a session's temporary table, then one UPDATE ... FROM it.
STAGE_SQL = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS task_updates ON COMMIT DELETE ROWS"
    f" AS SELECT {', '.join(MUTABLE)}, id FROM tasks WITH NO DATA"
)
STAGE_COPY = f"COPY task_updates ({', '.join(MUTABLE)}, id) FROM STDIN"
UPDATE_FROM_STAGE = (
    f"UPDATE tasks AS t SET {', '.join(f'{c} = u.{c}' for c in MUTABLE)}"
    " FROM task_updates AS u WHERE t.id = u.id"
)


def insert_row(r: TaskRecord) -> tuple[Any, ...]:
    """A new task's row in INSERT_COLUMNS order."""
    head = (r.id, r.job_id, r.tenant, r.user, r.category, r.eligibility, r.priority_class, r.rule)
    return (*head, r.spec, r.idempotency_key, r.submitted_at, *mutable_values(r))


def update_row(r: TaskRecord) -> tuple[Any, ...]:
    """The mutable columns of a task, then its id (UPDATE_SQL's parameters)."""
    return (*mutable_values(r), r.id)


def conninfo(url: str) -> str:
    """A libpq connection string from the service's database URL (any SQLAlchemy driver)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _write(
    cur: psycopg.AsyncCursor[Any],
    job_rows: list[tuple[Any, ...]],
    task_rows: list[tuple[Any, ...]],
    update_rows: list[tuple[Any, ...]],
    *,
    copy: bool = False,
    retry: bool = False,
) -> None:
    """Jobs, then new tasks, then updates (which may name tasks inserted just before)."""
    if job_rows:
        await cur.executemany(JOB_SQL, job_rows)
    if copy and len(task_rows) >= COPY_MIN:
        await _copy(cur, TASK_COPY, task_rows)
    elif task_rows:
        await cur.executemany(RETRY_TASK_SQL if retry else TASK_SQL, task_rows)
    if copy and len(update_rows) >= COPY_MIN:
        await _copy(cur, STAGE_COPY, update_rows)
        await cur.execute(UPDATE_FROM_STAGE)
    elif update_rows:
        await cur.executemany(UPDATE_SQL, update_rows)


async def _copy(cur: psycopg.AsyncCursor[Any], sql: str, rows: list[tuple[Any, ...]]) -> None:
    async with cur.copy(sql) as copy:
        for row in rows:
            await copy.write_row(row)


class PostgresTaskStore(SqlTaskStore):
    """`SqlTaskStore` whose `commit` runs on a psycopg connection of its own."""

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
        try:
            await self._transaction(job_rows, task_rows, update_rows)
        except psycopg.OperationalError as exc:
            # The held connection is gone (a server restart, an idle cut) or the server gave
            # the transaction up: once more on a new connection, idempotently (RETRY_TASK_SQL),
            # since the first COMMIT may have landed before the connection broke.
            await self._drop()
            log.warning("commit failed; once more on a new connection: %r", exc)
            try:
                await self._transaction(job_rows, task_rows, update_rows, retry=True)
            except psycopg.OperationalError:
                await self._drop()
                raise

    async def _transaction(
        self,
        job_rows: list[tuple[Any, ...]],
        task_rows: list[tuple[Any, ...]],
        update_rows: list[tuple[Any, ...]],
        *,
        retry: bool = False,
    ) -> None:
        conn = await self._connection()
        if retry or (len(task_rows) < COPY_MIN and len(update_rows) < COPY_MIN):
            async with conn.pipeline(), conn.transaction(), conn.cursor() as cur:
                await _write(cur, job_rows, task_rows, update_rows, retry=retry)
        else:
            async with conn.transaction(), conn.cursor() as cur:
                await _write(cur, job_rows, task_rows, update_rows, copy=True)

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            conn = await psycopg.AsyncConnection.connect(
                self._conninfo, autocommit=True, options=self._options
            )
            try:
                # Outside any transaction, so that no rollback can take it away.
                await conn.execute(STAGE_SQL)
            except BaseException:
                await conn.close()
                raise
            self._conn = conn
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
