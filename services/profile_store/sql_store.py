"""`ProfileStore` on SQLAlchemy's async engine, the same code on PostgreSQL and SQLite."""

from __future__ import annotations

import asyncio
import weakref
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from common.timeutil import utcnow
from services.profile_store import usage
from services.profile_store.model import (
    IngestResult,
    Metric,
    ModelRef,
    Outcome,
    Precision,
    Profile,
    ProfileFilter,
    ProfileKey,
    ProfilePage,
    Resource,
    TenantScore,
    WorkerProfile,
)
from services.profile_store.schema import (
    MetricSampleRow,
    ProfileRow,
    ResourceRow,
    TenantUsageRow,
    WorkerProfileRow,
)
from services.profile_store.speeds import DEFAULT_MIN_SAMPLES, SpeedTable, WorkloadTime, speed_table
from services.profile_store.stats import ProfileStats, QuantileSketch, Welford

SAMPLES = cast(sa.Table, MetricSampleRow.__table__)
PROFILES = cast(sa.Table, ProfileRow.__table__)
WORKER_PROFILES = cast(sa.Table, WorkerProfileRow.__table__)
RESOURCES = cast(sa.Table, ResourceRow.__table__)
TENANT_USAGE = cast(sa.Table, TenantUsageRow.__table__)
_SAMPLE_COLUMNS = [c.name for c in SAMPLES.columns]
_COPY_SAMPLES = f"COPY incoming_samples ({', '.join(_SAMPLE_COLUMNS)}) FROM STDIN"
_MOVE_SAMPLES = (
    f"INSERT INTO metric_samples ({', '.join(_SAMPLE_COLUMNS)})"
    f" SELECT {', '.join(_SAMPLE_COLUMNS)} FROM incoming_samples"
    " ON CONFLICT (task_id, attempt) DO NOTHING RETURNING task_id, attempt"
)
_STAT_COLUMNS = ("count", "mean", "m2", "ewma", "sketch", "items_per_second", "updated_at")


class SqlProfileStore:
    """See `services.profile_store.store.ProfileStore` for the contract."""

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
    ) -> None:
        self._engine = engine
        self._alpha = ewma_alpha
        self._half_life = usage_half_life_s
        self._reference = reference_device
        self._speed_min_samples = speed_min_samples
        # Mean time per profile (key id → workload time), loaded once, then kept in step
        # with every committed fold; the speed table is derived from it (speeds.py).
        self._workloads: dict[str, WorkloadTime] | None = None
        self._speed_table = SpeedTable()
        # Committed running figures of recently folded profiles and worker profiles, so that
        # a batch neither reads nor decodes them again (this process is the only writer).
        self._cache = StatsCache(stats_cache_size)
        # psycopg connections that have the temporary staging table (PostgreSQL only).
        self._staged: weakref.WeakSet[Any] = weakref.WeakSet()
        self._clock = clock
        self._shares: dict[str, float] = {}
        self._lock = asyncio.Lock()
        self._dialect: Any = postgresql if engine.dialect.name == "postgresql" else sqlite

    # -- writes ---------------------------------------------------------------------------

    async def ingest(self, metrics: Sequence[Metric]) -> IngestResult:
        if not metrics:
            return IngestResult(duplicates=[])
        first: dict[tuple[str, int], int] = {}
        for i, m in enumerate(metrics):
            first.setdefault((m.task_id, m.attempt), i)
        now = self._clock()
        async with self._lock:
            async with self._engine.begin() as conn:
                workloads = await self._load_workloads(conn)
                inserted = await self._insert_samples(conn, [metrics[i] for i in first.values()], now)
                stored = {first[k] for k in inserted}
                new = [metrics[i] for i in sorted(stored)]
                await self._upsert_resources(conn, metrics, now)
                folded: dict[Any, ProfileStats] = {}
                profiles = await self._fold_profiles(conn, new, now, folded)
                await self._fold_worker_profiles(conn, new, now, folded)
                table = self._speed_table
                if profiles:
                    workloads = {**workloads, **{p.key.id: _workload_time(p) for p in profiles}}
                    table = self._speeds_of(workloads)
                scores = await self._charge_tenants(conn, new, now, table)
            # Committed: only now does the in-memory view move on.
            self._workloads, self._speed_table = workloads, table
            self._cache.put_all(folded)
        return IngestResult(
            duplicates=[i not in stored for i in range(len(metrics))], profiles=profiles, scores=scores
        )

    async def _insert_samples(
        self, conn: AsyncConnection, metrics: Sequence[Metric], now: datetime
    ) -> set[tuple[str, int]]:
        rows = [_sample_row(m, now) for m in metrics]
        if self._dialect is postgresql:
            return await self._copy_samples(conn, rows)
        insert = self._dialect.insert(SAMPLES)
        stmt = insert.on_conflict_do_nothing(index_elements=["task_id", "attempt"]).returning(
            SAMPLES.c.task_id, SAMPLES.c.attempt
        )
        result = await conn.execute(stmt, rows)
        return {(row.task_id, row.attempt) for row in result}

    async def _copy_samples(
        self, conn: AsyncConnection, rows: Sequence[dict[str, Any]]
    ) -> set[tuple[str, int]]:
        """COPY the batch into a per-connection temporary table (emptied at commit), then
        move it over with ON CONFLICT DO NOTHING: COPY's speed, INSERT's idempotency."""
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        async with raw.cursor() as cur:
            if raw not in self._staged:
                await cur.execute(
                    "CREATE TEMPORARY TABLE IF NOT EXISTS incoming_samples"
                    " (LIKE metric_samples INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
                )
                self._staged.add(raw)
            async with cur.copy(_COPY_SAMPLES) as copy:
                for row in rows:
                    await copy.write_row([row[c] for c in _SAMPLE_COLUMNS])
            await cur.execute(_MOVE_SAMPLES)
            return {(task_id, attempt) for task_id, attempt in await cur.fetchall()}

    async def _upsert(
        self, conn: AsyncConnection, table: sa.Table, keys: Sequence[str], rows: Sequence[dict[str, Any]]
    ) -> None:
        if not rows:
            return
        stmt = self._dialect.insert(table)
        updates = {c: stmt.excluded[c] for c in rows[0] if c not in keys}
        await conn.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=updates), rows)

    async def _upsert_resources(
        self, conn: AsyncConnection, metrics: Sequence[Metric], now: datetime
    ) -> None:
        latest = {m.worker_id: m for m in metrics}
        rows = [
            {"worker_id": w, "device_model": m.device_model, "kind": m.worker_kind, "last_seen": now}
            for w, m in sorted(latest.items())
        ]
        await self._upsert(conn, RESOURCES, ["worker_id"], rows)

    async def _fold_profiles(
        self, conn: AsyncConnection, new: Sequence[Metric], now: datetime, folded: dict[Any, ProfileStats]
    ) -> list[Profile]:
        groups: dict[str, list[Metric]] = defaultdict(list)
        for m in _profiled(new):
            groups[m.profile_key.id].append(m)
        if not groups:
            return []
        missing = sorted(k for k in groups if k not in self._cache)
        if missing:
            query = sa.select(PROFILES).where(PROFILES.c.key_id.in_(missing)).with_for_update()
            self._cache.put_all({row.key_id: _stats(row._mapping) for row in await conn.execute(query)})
        rows, profiles = [], []
        for key_id, samples in sorted(groups.items()):
            key = samples[0].profile_key
            stats = folded[key_id] = self._fold(self._cache.get(key_id), samples)
            rows.append({"key_id": key_id, **_key_columns(key), **_stat_columns(stats, now)})
            profiles.append(_profile_of(key, stats, now))
        await self._upsert(conn, PROFILES, ["key_id"], rows)
        return profiles

    async def _fold_worker_profiles(
        self, conn: AsyncConnection, new: Sequence[Metric], now: datetime, folded: dict[Any, ProfileStats]
    ) -> None:
        groups: dict[tuple[str, str], list[Metric]] = defaultdict(list)
        for m in _profiled(new):
            groups[(m.profile_key.id, m.worker_id)].append(m)
        if not groups:
            return
        missing = [k for k in groups if k not in self._cache]
        if missing:
            query = (
                sa.select(WORKER_PROFILES)
                .where(WORKER_PROFILES.c.key_id.in_(sorted({k for k, _ in missing})))
                .where(WORKER_PROFILES.c.worker_id.in_(sorted({w for _, w in missing})))
                .with_for_update()
            )
            found = {(row.key_id, row.worker_id): _stats(row._mapping) for row in await conn.execute(query)}
            self._cache.put_all(found)
        rows = []
        for (key_id, worker_id), samples in sorted(groups.items()):
            stats = folded[(key_id, worker_id)] = self._fold(self._cache.get((key_id, worker_id)), samples)
            key_cols = _key_columns(samples[0].profile_key)
            rows.append({"key_id": key_id, "worker_id": worker_id, **key_cols, **_stat_columns(stats, now)})
        await self._upsert(conn, WORKER_PROFILES, ["key_id", "worker_id"], rows)

    def _fold(self, committed: ProfileStats | None, samples: Sequence[Metric]) -> ProfileStats:
        # A copy: the cached value stays the committed one until the transaction commits.
        stats = committed.copy() if committed is not None else ProfileStats()
        for m in samples:
            stats.observe(m.execution_time_s or 0.0, m.throughput, self._alpha)
        return stats

    async def _load_workloads(self, conn: AsyncConnection) -> dict[str, WorkloadTime]:
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
        return self._workloads

    def _speeds_of(self, workloads: Mapping[str, WorkloadTime]) -> SpeedTable:
        return speed_table(workloads.values(), reference=self._reference, min_samples=self._speed_min_samples)

    async def speed_table(self) -> SpeedTable:
        async with self._lock:
            if self._workloads is None:
                async with self._engine.connect() as conn:
                    await self._load_workloads(conn)
            return self._speed_table

    async def _charge_tenants(
        self, conn: AsyncConnection, new: Sequence[Metric], now: datetime, speeds: SpeedTable
    ) -> list[TenantScore]:
        charges: dict[str, float] = defaultdict(float)
        for m in new:
            if m.execution_time_s is not None:
                charges[m.tenant] += usage.usage_charge(m.execution_time_s, m.device_model, speeds.speeds)
        if not charges:
            return []
        query = sa.select(TENANT_USAGE).where(TENANT_USAGE.c.tenant.in_(sorted(charges))).with_for_update()
        existing = {row.tenant: row for row in await conn.execute(query)}
        rows = []
        for tenant, charge in sorted(charges.items()):
            old = existing.get(tenant)
            base = self._decayed(old.usage, old.updated_at, now) if old is not None else 0.0
            rows.append({"tenant": tenant, "usage": base + charge, "updated_at": now})
        await self._upsert(conn, TENANT_USAGE, ["tenant"], rows)
        return await self._scores(conn, now)

    def _decayed(self, value: float, since: datetime, now: datetime) -> float:
        return usage.decay(value, (now - _aware(since)).total_seconds(), self._half_life)

    def set_shares(self, shares: Mapping[str, float]) -> None:
        self._shares = dict(shares)

    # -- reads ----------------------------------------------------------------------------

    async def get_profile(self, key: ProfileKey) -> Profile | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(sa.select(PROFILES).where(PROFILES.c.key_id == key.id))).first()
        return _profile(row._mapping) if row is not None else None

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
        profiles = [_profile(r._mapping) for r in rows[:limit]]
        more = len(rows) > limit
        return ProfilePage(profiles=profiles, next_after=profiles[-1].key.id if more and profiles else "")

    async def all_profiles(self) -> list[Profile]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(sa.select(PROFILES).order_by(PROFILES.c.key_id))).all()
        return [_profile(r._mapping) for r in rows]

    async def worker_profiles(self, key: ProfileKey) -> list[WorkerProfile]:
        query = (
            sa.select(WORKER_PROFILES)
            .where(WORKER_PROFILES.c.key_id == key.id)
            .order_by(WORKER_PROFILES.c.worker_id)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [WorkerProfile(worker_id=r.worker_id, profile=_profile(r._mapping)) for r in rows]

    async def resources(self) -> list[Resource]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(sa.select(RESOURCES).order_by(RESOURCES.c.worker_id))).all()
        return [
            Resource(
                worker_id=r.worker_id, device_model=r.device_model, kind=r.kind, last_seen=_aware(r.last_seen)
            )
            for r in rows
        ]

    async def tenant_scores(self) -> list[TenantScore]:
        async with self._engine.connect() as conn:
            return await self._scores(conn, self._clock())

    async def _scores(self, conn: AsyncConnection, now: datetime) -> list[TenantScore]:
        rows = (await conn.execute(sa.select(TENANT_USAGE))).all()
        usages = {r.tenant: self._decayed(r.usage, r.updated_at, now) for r in rows}
        return usage.tenant_scores(usages, self._shares)

    async def close(self) -> None:
        await self._engine.dispose()


class StatsCache:
    """Least-recently-used map of profile key (or (key, worker)) to committed stats."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[Any, ProfileStats] = OrderedDict()

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def get(self, key: Any) -> ProfileStats | None:
        stats = self._items.get(key)
        if stats is not None:
            self._items.move_to_end(key)
        return stats

    def put_all(self, items: Mapping[Any, ProfileStats]) -> None:
        self._items.update(items)
        for key in items:
            self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _workload(key_id: str) -> str:
    """The profile key id without its device model (the first field)."""
    return key_id.partition("\x1f")[2]


def _workload_time(p: Profile) -> WorkloadTime:
    return WorkloadTime(
        device_model=p.key.device_model, workload=_workload(p.key.id), seconds=p.mean_seconds, count=p.count
    )


def _profiled(metrics: Sequence[Metric]) -> list[Metric]:
    return [m for m in metrics if m.outcome is Outcome.SUCCEEDED and m.execution_time_s is not None]


def _sample_row(m: Metric, now: datetime) -> dict[str, Any]:
    return {
        "task_id": m.task_id,
        "attempt": m.attempt,
        "worker_id": m.worker_id,
        "device_model": m.device_model,
        "model_name": m.model.name,
        "model_version": m.model.version,
        "precision": m.precision.value,
        "batch_size": m.batch_size,
        "category": m.category,
        "tenant": m.tenant,
        "queue_wait_s": m.queue_wait_s,
        "execution_time_s": m.execution_time_s,
        "items_per_second": m.items_per_second,
        "gpu_utilization": m.gpu_utilization,
        "cpu_utilization": m.cpu_utilization,
        "memory_bytes": m.memory_bytes,
        "gpu_power_watts": m.gpu_power_watts,
        "outcome": m.outcome.value,
        "finished_at": m.finished_at,
        "received_at": now,
    }


def _key_columns(key: ProfileKey) -> dict[str, Any]:
    return {
        "device_model": key.device_model,
        "model_name": key.model.name,
        "model_version": key.model.version,
        "precision": key.precision.value,
        "batch_bucket": key.batch_bucket,
        "category": key.category,
    }


def _stat_columns(stats: ProfileStats, now: datetime) -> dict[str, Any]:
    return {
        "count": stats.moments.count,
        "mean": stats.moments.mean,
        "m2": stats.moments.m2,
        "ewma": stats.ewma_seconds or 0.0,
        "sketch": stats.sketch.to_bytes(),
        "items_per_second": stats.items_per_second or 0.0,
        "updated_at": now,
    }


def _stats(values: Mapping[Any, Any]) -> ProfileStats:
    return ProfileStats(
        moments=Welford(values["count"], values["mean"], values["m2"]),
        ewma_seconds=values["ewma"] if values["count"] > 0 else None,
        items_per_second=values["items_per_second"] or None,
        sketch=QuantileSketch.from_bytes(values["sketch"]),
    )


def _profile(values: Mapping[Any, Any]) -> Profile:
    """A profile from a row mapping."""
    key = ProfileKey(
        device_model=values["device_model"],
        model=ModelRef(name=values["model_name"], version=values["model_version"]),
        precision=Precision(values["precision"]),
        batch_bucket=values["batch_bucket"],
        category=values["category"],
    )
    return _profile_of(key, _stats(values), _aware(values["updated_at"]))


def _profile_of(key: ProfileKey, stats: ProfileStats, updated_at: datetime) -> Profile:
    p50, p95, p99 = stats.quantiles()
    return Profile(
        key=key,
        count=stats.moments.count,
        mean_seconds=stats.moments.mean,
        ewma_seconds=stats.ewma_seconds or 0.0,
        variance=stats.moments.variance,
        p50_seconds=p50,
        p95_seconds=p95,
        p99_seconds=p99,
        items_per_second=stats.items_per_second or 0.0,
        updated_at=updated_at,
    )
