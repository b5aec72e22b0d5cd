"""`ProfileStore` on SQLAlchemy's async engine, PostgreSQL and SQLite.

An ingest is one transaction: insert the samples not stored yet, fold the new ones into
their profiles (fold.py), and upsert profiles, worker profiles, resources and tenant usage.
How the rows are written is the writer's business (sql_write.py): COPY and pipelined
statements on PostgreSQL, SQLAlchemy Core elsewhere.

The store is the only writer of its tables, so it keeps what it committed in memory (the
stats of recently folded profiles, every profile's mean time for the speed table, every
tenant's usage) and a batch reads nothing back. Those move on only after the commit, and
are dropped after any failed ingest, to be read again from the database. Ingests run one
at a time on a connection of their own, held between them and replaced after a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from common.timeutil import utcnow
from services.profile_store import fold
from services.profile_store.model import (
    IngestResult,
    Metric,
    Precision,
    Profile,
    ProfileFilter,
    ProfileKey,
    ProfilePage,
    Resource,
    TenantScore,
    WorkerProfile,
)
from services.profile_store.rows import (
    PROFILES,
    RESOURCES,
    TENANT_USAGE,
    WORKER_PROFILES,
    aware,
    key_values,
    profile_of,
    profile_of_row,
    resource_rows,
    stat_values,
    stats_of,
)
from services.profile_store.speeds import DEFAULT_MIN_SAMPLES, SpeedTable, WorkloadTime, speed_table
from services.profile_store.sql_write import (
    FoldRows,
    PortableWriter,
    PostgresWriter,
    SamplesSeenBefore,
    Writer,
)
from services.profile_store.stats import ProfileStats

# After resends, this many ingests insert carefully (the rest of the resent run).
CAREFUL_INGESTS = 8
# Tries of an ingest whose first transactions met resends or a connection cut meanwhile.
INGEST_ATTEMPTS = 3


@dataclass
class _Batch:
    """What one ingest computed, to be written, then (once committed) remembered."""

    rows: FoldRows = field(default_factory=FoldRows)
    profiles: list[Profile] = field(default_factory=list)
    scores: list[TenantScore] = field(default_factory=list)
    stats: dict[Any, ProfileStats] = field(default_factory=dict)
    usage: dict[str, fold.Usage] = field(default_factory=dict)
    workloads: dict[str, WorkloadTime] = field(default_factory=dict)
    speeds: SpeedTable = field(default_factory=SpeedTable)


class SqlProfileStore:
    """See `services.profile_store.store.ProfileStore` for the contract.

    `portable_writes` makes PostgreSQL use the portable writer too (SQLite always does)."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        ewma_alpha: float = 0.2,
        usage_half_life_s: float = 3600.0,
        reference_device: str = "",
        speed_min_samples: int = DEFAULT_MIN_SAMPLES,
        stats_cache_size: int = 100_000,
        clock: Callable[[], datetime] = utcnow,
        portable_writes: bool = False,
    ) -> None:
        self._engine = engine
        self._alpha = ewma_alpha
        self._half_life = usage_half_life_s
        self._reference = reference_device
        self._speed_min_samples = speed_min_samples
        postgres = engine.dialect.name == "postgresql"
        self._writer: Writer = (
            PostgresWriter() if postgres and not portable_writes else PortableWriter(engine.dialect.name)
        )
        # Committed state (see the module docstring); None = read it from the database.
        self._workloads: dict[str, WorkloadTime] | None = None
        self._speed_table = SpeedTable()
        self._usage: dict[str, fold.Usage] | None = None
        self._cache = fold.StatsCache(stats_cache_size)
        self._clock = clock
        self._shares: dict[str, float] = {}
        self._lock = asyncio.Lock()
        self._conn: AsyncConnection | None = None
        # Ingests left that insert carefully (resends were seen lately); 0: optimistically.
        self._careful = 0

    # -- writes ---------------------------------------------------------------------------

    async def ingest(self, metrics: Sequence[Metric]) -> IngestResult:
        if not metrics:
            return IngestResult(duplicates=[])
        first = fold.first_occurrences(metrics)
        now = self._clock()
        async with self._lock:
            for attempt in range(1, INGEST_ATTEMPTS + 1):
                try:
                    batch, stored = await self._transaction(metrics, first, now)
                    break
                except (SamplesSeenBefore, sa.exc.DBAPIError, psycopg.OperationalError) as exc:
                    # Resends met an optimistic insert (the next one is careful), or the held
                    # connection died since the last ingest (the database restarted, an idle
                    # connection was cut): again. Samples already stored, should a commit
                    # have gone through after all, come back as duplicates.
                    # The raw COPY path raises psycopg's own error, SQLAlchemy's paths wrap it.
                    lost = isinstance(exc, psycopg.OperationalError) or (
                        isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated
                    )
                    if attempt == INGEST_ATTEMPTS or not (lost or isinstance(exc, SamplesSeenBefore)):
                        raise
        duplicates = [True] * len(metrics)
        for i in stored:
            duplicates[i] = False
        return IngestResult(duplicates=duplicates, profiles=batch.profiles, scores=batch.scores)

    async def _transaction(
        self, metrics: Sequence[Metric], first: Mapping[tuple[str, int], int], now: datetime
    ) -> tuple[_Batch, list[int]]:
        """One ingest transaction; the indexes (into `metrics`) of the samples it stored."""
        careful = self._careful > 0
        try:
            conn = await self._ingest_connection()
            async with conn.begin():
                await self._load(conn)
                unique = [metrics[i] for i in first.values()]
                before = await self._writer.insert_samples(conn, unique, now, careful=careful)
                stored = [i for k, i in first.items() if k not in before]
                batch = await self._fold(conn, [metrics[i] for i in stored], now)
                batch.rows.resources = resource_rows(metrics, now)
                await self._writer.write(conn, batch.rows)
        except SamplesSeenBefore:
            # Rolled back before it changed anything, in memory or in the database.
            self._writer.rolled_back()
            self._careful = CAREFUL_INGESTS
            raise
        except BaseException:
            self._writer.rolled_back()
            self._forget()
            await self._release_ingest_connection()
            raise
        self._remember(batch)
        if before:
            self._careful = CAREFUL_INGESTS  # resends come in runs (a stream reconnected)
        elif careful:
            self._careful -= 1
        return batch, stored

    async def _ingest_connection(self) -> AsyncConnection:
        """The connection ingests run on, kept between them: no pool checkout, liveness
        ping or reset per transaction (ingests run one at a time, under the lock)."""
        if self._conn is None:
            self._conn = await self._engine.connect()
        return self._conn

    async def _release_ingest_connection(self) -> None:
        """After a failure: hand the connection back (the pool discards a broken one) and
        take a fresh one for the next ingest."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def _fold(self, conn: AsyncConnection, new: Sequence[Metric], now: datetime) -> _Batch:
        assert self._workloads is not None and self._usage is not None
        groups = fold.group(new)
        keys = {g: fold.profile_key(g) for g in groups.profiles}
        ids = {g: key.id for g, key in keys.items()}
        await self._load_stats(conn, ids.values(), [(ids[g], w) for g, w in groups.workers])
        batch = _Batch(workloads=self._workloads, speeds=self._speed_table)
        for g in sorted(groups.profiles, key=ids.__getitem__):
            key_id, key = ids[g], keys[g]
            stats = batch.stats[key_id] = self._folded(key_id, groups.profiles[g])
            batch.rows.profiles.append((key_id, *key_values(key), *stat_values(stats, now)))
            batch.profiles.append(profile_of(key, stats, now))
        for g, worker in sorted(groups.workers, key=lambda gw: (ids[gw[0]], gw[1])):
            stats = batch.stats[(ids[g], worker)] = self._folded(
                (ids[g], worker), groups.workers[(g, worker)]
            )
            batch.rows.worker_profiles.append(
                (ids[g], worker, *key_values(keys[g]), *stat_values(stats, now))
            )
        if batch.profiles:
            batch.workloads = {**self._workloads, **{p.key.id: _workload_time(p) for p in batch.profiles}}
            batch.speeds = self._speeds_of(batch.workloads)
        self._charge(batch, new, now)
        return batch

    def _folded(self, cache_key: Any, samples: Sequence[fold.Sample]) -> ProfileStats:
        return fold.fold(self._cache.get(cache_key), samples, self._alpha)

    def _charge(self, batch: _Batch, new: Sequence[Metric], now: datetime) -> None:
        """Tenant usage at the speeds as of this batch, and every tenant's new score."""
        assert self._usage is not None
        charges = fold.tenant_charges(new, batch.speeds.speeds)
        if charges:
            batch.usage = fold.charge(self._usage, charges, now, self._half_life)
            batch.rows.tenants = [(t, u, at) for t, (u, at) in batch.usage.items()]
            batch.scores = fold.scores({**self._usage, **batch.usage}, self._shares, now, self._half_life)

    async def _load_stats(
        self, conn: AsyncConnection, key_ids: Iterable[str], worker_keys: Iterable[tuple[str, str]]
    ) -> None:
        """Read the committed stats of the keys this batch folds that the cache lacks."""
        missing = sorted(k for k in key_ids if k not in self._cache)
        if missing:
            query = sa.select(PROFILES).where(PROFILES.c.key_id.in_(missing)).with_for_update()
            self._cache.put_all({row.key_id: stats_of(row._mapping) for row in await conn.execute(query)})
        absent = [k for k in worker_keys if k not in self._cache]
        if absent:
            query = (
                sa.select(WORKER_PROFILES)
                .where(WORKER_PROFILES.c.key_id.in_(sorted({k for k, _ in absent})))
                .where(WORKER_PROFILES.c.worker_id.in_(sorted({w for _, w in absent})))
                .with_for_update()
            )
            found = {(row.key_id, row.worker_id): stats_of(row._mapping) for row in await conn.execute(query)}
            self._cache.put_all(found)

    async def _load(self, conn: AsyncConnection) -> None:
        if self._workloads is None:
            columns = (PROFILES.c.key_id, PROFILES.c.device_model, PROFILES.c.mean, PROFILES.c.count)
            rows = await conn.execute(sa.select(*columns))
            self._workloads = {
                r.key_id: WorkloadTime(
                    device_model=r.device_model,
                    workload=_workload(r.key_id),
                    seconds=r.mean,
                    count=r._mapping["count"],
                )
                for r in rows
            }
            self._speed_table = self._speeds_of(self._workloads)
        if self._usage is None:
            rows = await conn.execute(sa.select(TENANT_USAGE))
            self._usage = {r.tenant: (r.usage, aware(r.updated_at)) for r in rows}

    def _remember(self, batch: _Batch) -> None:
        """The batch committed: the in-memory state moves on with it."""
        assert self._usage is not None
        self._workloads, self._speed_table = batch.workloads, batch.speeds
        self._cache.put_all(batch.stats)
        self._usage.update(batch.usage)

    def _forget(self) -> None:
        """After a failure the database may be ahead of or behind memory: read it again."""
        self._workloads = None
        self._usage = None
        self._cache.clear()

    def _speeds_of(self, workloads: Mapping[str, WorkloadTime]) -> SpeedTable:
        return speed_table(workloads.values(), reference=self._reference, min_samples=self._speed_min_samples)

    async def speed_table(self) -> SpeedTable:
        async with self._lock:
            if self._workloads is None or self._usage is None:
                async with self._engine.connect() as conn:
                    await self._load(conn)
            return self._speed_table

    def set_shares(self, shares: Mapping[str, float]) -> None:
        self._shares = dict(shares)

    # -- reads ----------------------------------------------------------------------------

    async def get_profile(self, key: ProfileKey) -> Profile | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(sa.select(PROFILES).where(PROFILES.c.key_id == key.id))).first()
        return profile_of_row(row._mapping) if row is not None else None

    async def list_profiles(self, filter: ProfileFilter, *, after: str = "", limit: int = 100) -> ProfilePage:
        query = sa.select(PROFILES).where(PROFILES.c.key_id > after).order_by(PROFILES.c.key_id)
        if filter.model_name:
            query = query.where(PROFILES.c.model_name == filter.model_name)
        if filter.device_model:
            query = query.where(PROFILES.c.device_model == filter.device_model)
        if filter.precision is not Precision.UNSPECIFIED:
            query = query.where(PROFILES.c.precision == filter.precision.value)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query.limit(limit + 1))).all()
        profiles = [profile_of_row(r._mapping) for r in rows[:limit]]
        more = len(rows) > limit
        return ProfilePage(profiles=profiles, next_after=profiles[-1].key.id if more and profiles else "")

    async def all_profiles(self) -> list[Profile]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(sa.select(PROFILES).order_by(PROFILES.c.key_id))).all()
        return [profile_of_row(r._mapping) for r in rows]

    async def worker_profiles(self, key: ProfileKey) -> list[WorkerProfile]:
        query = (
            sa.select(WORKER_PROFILES)
            .where(WORKER_PROFILES.c.key_id == key.id)
            .order_by(WORKER_PROFILES.c.worker_id)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [WorkerProfile(worker_id=r.worker_id, profile=profile_of_row(r._mapping)) for r in rows]

    async def resources(self) -> list[Resource]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(sa.select(RESOURCES).order_by(RESOURCES.c.worker_id))).all()
        return [
            Resource(
                worker_id=r.worker_id, device_model=r.device_model, kind=r.kind, last_seen=aware(r.last_seen)
            )
            for r in rows
        ]

    async def tenant_scores(self) -> list[TenantScore]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(sa.select(TENANT_USAGE))).all()
        usages = {r.tenant: (r.usage, aware(r.updated_at)) for r in rows}
        return fold.scores(usages, self._shares, self._clock(), self._half_life)

    async def close(self) -> None:
        async with self._lock:
            await self._release_ingest_connection()
        await self._engine.dispose()


def _workload(key_id: str) -> str:
    """The profile key id without its device model (the first field)."""
    return key_id.partition("\x1f")[2]


def _workload_time(p: Profile) -> WorkloadTime:
    return WorkloadTime(
        device_model=p.key.device_model, workload=_workload(p.key.id), seconds=p.mean_seconds, count=p.count
    )
