"""How one ingest transaction writes its rows: a PostgreSQL fast path and a portable one.

Both take the same rows and leave the same tables. `PostgresWriter` streams the samples
with one COPY straight into their table when none should be stored yet (no resends seen
lately); a COPY that meets a stored sample fails as a whole, and the store inserts again
carefully: one COPY into a temporary table, moved over with one INSERT ... ON CONFLICT DO
NOTHING that answers with the duplicates only (COPY's speed, INSERT's idempotency). It
sends the profile, worker profile, resource and tenant upserts as one statement of
multi-row INSERTs in data-modifying CTEs (one round trip). `PortableWriter` does the
same with SQLAlchemy Core statements on any dialect; it is SQLite's path.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from services.profile_store.model import Metric
from services.profile_store.rows import (
    KEY_COLUMNS,
    PROFILES,
    RESOURCES,
    SAMPLE_COLUMNS,
    SAMPLES,
    STAT_COLUMNS,
    TENANT_USAGE,
    WORKER_PROFILES,
    sample_row,
    samples_copy_text,
)

PROFILE_COLUMNS = ("key_id", *KEY_COLUMNS, *STAT_COLUMNS)
WORKER_PROFILE_COLUMNS = ("key_id", "worker_id", *KEY_COLUMNS, *STAT_COLUMNS)
RESOURCE_COLUMNS = ("worker_id", "device_model", "kind", "last_seen")
TENANT_COLUMNS = ("tenant", "usage", "updated_at")


@dataclass
class FoldRows:
    """What a batch writes after its samples, each list sorted by primary key."""

    profiles: list[tuple[Any, ...]] = field(default_factory=list)  # PROFILE_COLUMNS
    worker_profiles: list[tuple[Any, ...]] = field(default_factory=list)  # WORKER_PROFILE_COLUMNS
    resources: list[tuple[Any, ...]] = field(default_factory=list)  # RESOURCE_COLUMNS
    tenants: list[tuple[Any, ...]] = field(default_factory=list)  # TENANT_COLUMNS


class SamplesSeenBefore(Exception):
    """An optimistic insert met a sample stored before: the transaction is spoilt; roll it
    back and insert carefully."""


class Writer(Protocol):
    async def insert_samples(
        self, conn: AsyncConnection, metrics: Sequence[Metric], now: datetime, *, careful: bool = True
    ) -> set[tuple[str, int]]:
        """Insert the samples (one per (task id, attempt)) not stored yet; the (task id,
        attempt) of those that were stored already. With `careful=False` the writer may
        assume that none is stored yet, and raises SamplesSeenBefore when one is."""
        ...

    async def write(self, conn: AsyncConnection, rows: FoldRows) -> None:
        """Upsert the batch's profiles, worker profiles, resources and tenant usage."""
        ...

    def rolled_back(self) -> None:
        """The transaction failed: nothing it created on the connection survives."""
        ...


def _quoted(columns: Sequence[str]) -> str:
    return ", ".join(f'"{c}"' for c in columns)


def _upsert_sql(table: str, columns: Sequence[str], keys: Sequence[str], rows: int = 1) -> str:
    updates = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in columns if c not in keys)
    row = f"({', '.join(['%s'] * len(columns))})"
    return (
        f"INSERT INTO {table} ({_quoted(columns)}) VALUES {', '.join([row] * rows)}"
        f" ON CONFLICT ({_quoted(keys)}) DO UPDATE SET {updates}"
    )


class PostgresWriter:
    """COPY and multi-row upserts on the psycopg connection under the SQLAlchemy one (same
    transaction)."""

    _STAGE = (
        "CREATE TEMPORARY TABLE IF NOT EXISTS incoming_samples"
        " (LIKE metric_samples INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    )
    _COPY = f"COPY incoming_samples ({_quoted(SAMPLE_COLUMNS)}) FROM STDIN"
    _COPY_DIRECT = f"COPY metric_samples ({_quoted(SAMPLE_COLUMNS)}) FROM STDIN"
    # Move the staged rows over and answer with those that were there already (usually
    # none): one statement, and only the duplicates come back.
    _MOVE = (
        "WITH moved AS ("
        f" INSERT INTO metric_samples ({_quoted(SAMPLE_COLUMNS)})"
        f" SELECT {_quoted(SAMPLE_COLUMNS)} FROM incoming_samples"
        " ON CONFLICT (task_id, attempt) DO NOTHING RETURNING task_id, attempt)"
        " SELECT task_id, attempt FROM incoming_samples"
        " EXCEPT SELECT task_id, attempt FROM moved"
    )
    # FoldRows attribute, table, columns, primary key.
    _UPSERTS = (
        ("profiles", "profiles", PROFILE_COLUMNS, ("key_id",)),
        ("worker_profiles", "worker_profiles", WORKER_PROFILE_COLUMNS, ("key_id", "worker_id")),
        ("resources", "resources", RESOURCE_COLUMNS, ("worker_id",)),
        ("tenants", "tenant_usage", TENANT_COLUMNS, ("tenant",)),
    )
    # Bounds of the upsert statements (PostgreSQL takes at most 65,535 parameters).
    _ROWS_PER_INSERT = 100
    _PARAMS_PER_STATEMENT = 20_000

    def __init__(self) -> None:
        # psycopg connections that have the temporary staging table.
        self._staged: weakref.WeakSet[Any] = weakref.WeakSet()

    def rolled_back(self) -> None:
        # A rollback undoes a CREATE made in that transaction: create it again next time.
        self._staged.clear()

    async def insert_samples(
        self, conn: AsyncConnection, metrics: Sequence[Metric], now: datetime, *, careful: bool = True
    ) -> set[tuple[str, int]]:
        if not metrics:
            return set()
        raw = await _driver_connection(conn)
        if not careful:
            # Straight into the table: no staging and no move (a round trip and a statement
            # less). A resend makes the COPY fail as a whole.
            try:
                async with raw.cursor() as cur, cur.copy(self._COPY_DIRECT) as copy:
                    await copy.write(samples_copy_text(metrics, now))
            except psycopg.errors.UniqueViolation as exc:
                raise SamplesSeenBefore(str(exc)) from exc
            return set()
        async with raw.cursor() as cur:
            if raw not in self._staged:
                await cur.execute(self._STAGE)
                self._staged.add(raw)
            async with cur.copy(self._COPY) as copy:
                await copy.write(samples_copy_text(metrics, now))
            await cur.execute(self._MOVE)
            return {(task_id, attempt) for task_id, attempt in await cur.fetchall()}

    async def write(self, conn: AsyncConnection, rows: FoldRows) -> None:
        raw = await _driver_connection(conn)
        async with raw.cursor() as cur:
            for sql, params in self._statements(rows):
                await cur.execute(sql, params, prepare=False)

    def _statements(self, rows: FoldRows) -> list[tuple[str, list[Any]]]:
        """The upserts in as few statements as can be: a table's rows in multi-row INSERTs
        of at most _ROWS_PER_INSERT rows, joined as data-modifying CTEs into statements of
        at most _PARAMS_PER_STATEMENT parameters (each row's key is unique, so no statement
        touches a row twice). The usual batch is one statement: one round trip, where a
        pipeline of executemany sent a query per row."""
        statements: list[tuple[str, list[Any]]] = []
        parts: list[str] = []
        params: list[Any] = []
        for name, table, columns, keys in self._UPSERTS:
            values: list[tuple[Any, ...]] = getattr(rows, name)
            for start in range(0, len(values), self._ROWS_PER_INSERT):
                chunk = values[start : start + self._ROWS_PER_INSERT]
                if parts and len(params) + len(chunk) * len(columns) > self._PARAMS_PER_STATEMENT:
                    statements.append(_joined(parts, params))
                    parts, params = [], []
                parts.append(_upsert_sql(table, columns, keys, len(chunk)))
                params.extend([v for row in chunk for v in row])
        if parts:
            statements.append(_joined(parts, params))
        return statements


def _joined(parts: Sequence[str], params: list[Any]) -> tuple[str, list[Any]]:
    if len(parts) == 1:
        return parts[0], params
    return "WITH " + ", ".join(f"u{i} AS ({sql})" for i, sql in enumerate(parts)) + " SELECT 1", params


async def _driver_connection(conn: AsyncConnection) -> Any:
    raw = (await conn.get_raw_connection()).driver_connection
    assert raw is not None
    return raw


class PortableWriter:
    """SQLAlchemy Core statements: INSERT ... ON CONFLICT DO NOTHING RETURNING for the
    samples, executemany upserts for the rest."""

    def __init__(self, dialect_name: str) -> None:
        self._dialect: Any = postgresql if dialect_name == "postgresql" else sqlite

    def rolled_back(self) -> None:
        pass  # it keeps nothing on the connection

    async def insert_samples(
        self, conn: AsyncConnection, metrics: Sequence[Metric], now: datetime, *, careful: bool = True
    ) -> set[tuple[str, int]]:
        if not metrics:
            return set()
        stmt = (
            self._dialect.insert(SAMPLES)
            .on_conflict_do_nothing(index_elements=["task_id", "attempt"])
            .returning(SAMPLES.c.task_id, SAMPLES.c.attempt)
        )
        result = await conn.execute(stmt, [sample_row(m, now) for m in metrics])
        inserted = {(row.task_id, row.attempt) for row in result}
        return {(m.task_id, m.attempt) for m in metrics} - inserted

    async def write(self, conn: AsyncConnection, rows: FoldRows) -> None:
        await self._upsert(conn, PROFILES, PROFILE_COLUMNS, ("key_id",), rows.profiles)
        await self._upsert(
            conn, WORKER_PROFILES, WORKER_PROFILE_COLUMNS, ("key_id", "worker_id"), rows.worker_profiles
        )
        await self._upsert(conn, RESOURCES, RESOURCE_COLUMNS, ("worker_id",), rows.resources)
        await self._upsert(conn, TENANT_USAGE, TENANT_COLUMNS, ("tenant",), rows.tenants)

    async def _upsert(
        self,
        conn: AsyncConnection,
        table: sa.Table,
        columns: Sequence[str],
        keys: Sequence[str],
        rows: Sequence[tuple[Any, ...]],
    ) -> None:
        if not rows:
            return
        stmt = self._dialect.insert(table)
        updates = {c: stmt.excluded[c] for c in columns if c not in keys}
        upsert = stmt.on_conflict_do_update(index_elements=list(keys), set_=updates)
        await conn.execute(upsert, [dict(zip(columns, row, strict=True)) for row in rows])
