"""One contract suite for the profile store, run on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from common.db import create_engine, upgrade
from common.tokens import sign_assignment
from services.profile_store.app import MIGRATIONS, SCHEMA
from services.profile_store.feed import ChangeFeed
from services.profile_store.model import (
    Metric,
    ModelRef,
    Outcome,
    Precision,
    ProfileFilter,
    ProfileKey,
)
from services.profile_store.servicer import ProfileStoreServicer
from services.profile_store.sql_store import CAREFUL_INGESTS, SqlProfileStore
from services.profile_store.sql_write import PostgresWriter
from switchyard.v1 import profile_store_pb2, types_pb2

SECRET = "contract-test-internal-token"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(database_url: str, clock: Clock) -> AsyncIterator[SqlProfileStore]:
    # SQLite starts empty; the PostgreSQL clone is migrated already, so this must be a no-op.
    await asyncio.to_thread(upgrade, database_url, SCHEMA, MIGRATIONS)
    s = SqlProfileStore(
        create_engine(database_url, SCHEMA), ewma_alpha=0.5, usage_half_life_s=3600, clock=clock
    )
    yield s
    await s.close()


def metric(task_id: str, seconds: float | None = 1.0, **fields: Any) -> Metric:
    values: dict[str, Any] = {
        "task_id": task_id,
        "attempt": 1,
        "worker_id": "w1",
        "device_model": "h100",
        "model": ModelRef(name="resnet", version="1"),
        "precision": Precision.FP16,
        "batch_size": 30,
        "category": "inference",
        "tenant": "acme",
        "execution_time_s": seconds,
        "outcome": Outcome.SUCCEEDED,
    }
    values.update(fields)
    return Metric(**values)


KEY = ProfileKey(
    device_model="h100", model=ModelRef(name="resnet", version="1"), precision=Precision.FP16,
    batch_bucket=32, category="inference",
)  # fmt: skip


async def test_ingest_creates_a_profile(store: SqlProfileStore) -> None:
    result = await store.ingest([metric("t1", 1.0), metric("t2", 2.0), metric("t3", 3.0, worker_id="w2")])
    assert list(result.duplicates) == [False, False, False]
    assert [p.key for p in result.profiles] == [KEY]
    profile = await store.get_profile(KEY)
    assert profile is not None
    assert profile.count == 3
    assert profile.mean_seconds == pytest.approx(2.0)
    assert profile.variance == pytest.approx(1.0)
    assert profile.ewma_seconds == pytest.approx(0.5 * 3 + 0.25 * 2 + 0.25 * 1)
    assert profile.p50_seconds == pytest.approx(2.0, rel=0.01)
    assert profile.items_per_second > 0
    assert profile.updated_at.tzinfo is not None
    workers = await store.worker_profiles(KEY)
    assert [(w.worker_id, w.profile.count) for w in workers] == [("w1", 2), ("w2", 1)]
    resources = await store.resources()
    assert [(r.worker_id, r.device_model) for r in resources] == [("w1", "h100"), ("w2", "h100")]
    assert await store.get_profile(KEY.__class__(device_model="cpu", category="inference")) is None


async def test_only_successes_update_profiles(store: SqlProfileStore) -> None:
    await store.ingest([metric("ok", 1.0), metric("bad", 50.0, outcome=Outcome.FAILED)])
    profile = await store.get_profile(KEY)
    assert profile is not None and profile.count == 1 and profile.mean_seconds == pytest.approx(1.0)


async def test_ingest_is_idempotent(store: SqlProfileStore) -> None:
    batch = [metric("t1", 1.0), metric("t2", 3.0)]
    first = await store.ingest(batch)
    again = await store.ingest(batch)
    assert list(first.duplicates) == [False, False]
    assert list(again.duplicates) == [True, True]
    assert again.profiles == [] and again.scores == []
    profile = await store.get_profile(KEY)
    assert profile is not None and profile.count == 2
    (score,) = await store.tenant_scores()
    assert score.decayed_usage == pytest.approx(4.0)
    # A retry is a new attempt and counts; the same attempt twice in one batch counts once.
    mixed = await store.ingest([metric("t1", 5.0, attempt=2), metric("t9", 1.0), metric("t9", 1.0)])
    assert list(mixed.duplicates) == [False, False, True]
    profile = await store.get_profile(KEY)
    assert profile is not None and profile.count == 4


async def test_batch_with_one_bad_item_stores_the_others(store: SqlProfileStore) -> None:
    servicer = ProfileStoreServicer(store, ChangeFeed(0.01), internal_token=SECRET, batch_max=10)

    async def requests() -> AsyncIterator[profile_store_pb2.IngestMetricsRequest]:
        yield profile_store_pb2.IngestMetricsRequest(
            metrics=[proto("a"), proto("b", attempt=0), proto("c"), proto("d", token="forged")]
        )

    (response,) = [r async for r in servicer.IngestMetrics(requests(), None)]  # type: ignore[arg-type]
    codes = [(a.task_id, a.status.code) for a in response.acks]
    assert codes == [("a", 0), ("b", 3), ("c", 0), ("d", 7)]
    profile = await store.get_profile(KEY)
    assert profile is not None and profile.count == 2


def proto(task_id: str, attempt: int = 1, token: str | None = None) -> types_pb2.ResultMetrics:
    m = types_pb2.ResultMetrics(
        task_id=task_id, attempt=attempt, worker_id="w1", device_model="h100",
        model=types_pb2.ModelRef(name="resnet", version="1"), precision=types_pb2.PRECISION_FP16,
        batch_size=30, category="inference", tenant="acme", outcome=types_pb2.OUTCOME_SUCCEEDED,
    )  # fmt: skip
    m.execution_time.FromMilliseconds(1500)
    m.assignment_token = token if token is not None else sign_assignment(SECRET, task_id, attempt, "w1")
    return m


async def test_tenant_usage_and_scores(store: SqlProfileStore, clock: Clock) -> None:
    assert await store.tenant_scores() == []
    result = await store.ingest(
        [
            metric("a1", 20.0, tenant="a"),
            metric("a2", 10.0, tenant="a", outcome=Outcome.FAILED),
            metric("b1", 10.0, tenant="b"),
            metric("c1", None, tenant="c", outcome=Outcome.CANCELLED),
        ]
    )
    scores = {s.tenant: s for s in await store.tenant_scores()}
    assert {s.tenant for s in result.scores} == {"a", "b"}
    assert set(scores) == {"a", "b"}
    assert scores["a"].decayed_usage == pytest.approx(30.0)
    assert scores["a"].share == 1.0
    assert scores["a"].usage_score == pytest.approx(0.75 / 0.5)
    assert scores["a"].fair_share_factor == pytest.approx(2**-1.5)
    assert scores["b"].fair_share_factor == pytest.approx(2**-0.5)
    clock.now += timedelta(hours=1)
    later = {s.tenant: s for s in await store.tenant_scores()}
    assert later["a"].decayed_usage == pytest.approx(15.0)
    assert later["a"].usage_score == pytest.approx(1.5)  # both decayed alike: same fractions
    await store.ingest([metric("b2", 15.0, tenant="b")])
    latest = {s.tenant: s for s in await store.tenant_scores()}
    assert latest["b"].decayed_usage == pytest.approx(20.0)
    store.set_shares({"a": 3.0})
    shared = {s.tenant: s for s in await store.tenant_scores()}
    assert shared["a"].share == 3.0 and shared["b"].share == 1.0
    assert shared["a"].usage_score == pytest.approx((15 / 35) / 0.75)


async def _seed_profiles(store: SqlProfileStore) -> None:
    batch = [
        metric(f"t{i}", 1.0 + i, device_model=device, model=ModelRef(name=model), precision=precision,
               batch_size=size)
        for i, (device, model, precision, size) in enumerate(
            [
                ("h100", "resnet", Precision.FP16, 8),
                ("h100", "resnet", Precision.FP32, 8),
                ("h100", "bert", Precision.FP16, 8),
                ("cpu-x86", "resnet", Precision.FP32, 8),
                ("cpu-x86", "resnet", Precision.FP32, 64),
                ("a10", "bert", Precision.INT8, 1),
            ]
        )
    ]  # fmt: skip
    await store.ingest(batch)


async def test_list_filters(store: SqlProfileStore) -> None:
    await _seed_profiles(store)
    everything = await store.list_profiles(ProfileFilter())
    assert len(everything.profiles) == 6 and everything.next_after == ""

    async def keys(**kw: Any) -> set[tuple[str, str, str, int]]:
        page = await store.list_profiles(ProfileFilter(**kw))
        return {
            (p.key.device_model, p.key.model.name, p.key.precision.value, p.key.batch_bucket)
            for p in page.profiles
        }

    assert await keys(model_name="bert") == {("h100", "bert", "fp16", 8), ("a10", "bert", "int8", 1)}
    assert await keys(device_model="cpu-x86") == {
        ("cpu-x86", "resnet", "fp32", 8),
        ("cpu-x86", "resnet", "fp32", 64),
    }
    assert await keys(model_name="resnet", precision=Precision.FP32, device_model="h100") == {
        ("h100", "resnet", "fp32", 8)
    }
    assert await keys(model_name="nothing") == set()


async def test_pagination(store: SqlProfileStore) -> None:
    await _seed_profiles(store)
    seen: list[str] = []
    after = ""
    pages = 0
    while True:
        page = await store.list_profiles(ProfileFilter(), after=after, limit=4)
        seen.extend(p.key.id for p in page.profiles)
        pages += 1
        if not page.next_after:
            break
        after = page.next_after
    assert pages == 2
    assert len(seen) == 6 and len(set(seen)) == 6
    assert seen == [p.key.id for p in await store.all_profiles()]
    exact = await store.list_profiles(ProfileFilter(), limit=6)
    assert exact.next_after == ""


async def test_a_full_batch_in_one_call(store: SqlProfileStore) -> None:
    when = datetime(2030, 1, 1, 0, 0, 1, tzinfo=UTC)
    batch = [
        metric(f"t{i}", 0.5, queue_wait_s=None if i % 2 else 0.1, finished_at=None if i % 3 else when)
        for i in range(500)
    ]
    result = await store.ingest(batch)
    assert not any(result.duplicates)
    profile = await store.get_profile(KEY)
    assert profile is not None and profile.count == 500
    again = await store.ingest([*batch[:10], metric("new", 0.5)])
    assert list(again.duplicates) == [True] * 10 + [False]


async def test_usage_is_charged_at_the_measured_device_speed(store: SqlProfileStore, clock: Clock) -> None:
    # Four a100 runs at 2 s: a100 is the only device, so the reference; 8 reference-seconds.
    await store.ingest([metric(f"a{i}", 2.0, device_model="a100", tenant="x") for i in range(4)])
    # Three h100 runs of the same workload at 1 s: h100 is 2x faster, each second costs 2.
    await store.ingest([metric(f"h{i}", 1.0, device_model="h100", tenant="y") for i in range(3)])
    table = await store.speed_table()
    assert table.reference == "a100"
    assert table.speeds["h100"] == pytest.approx(2.0)
    scores = {s.tenant: s.decayed_usage for s in await store.tenant_scores()}
    assert scores == {"x": pytest.approx(8.0), "y": pytest.approx(6.0)}
    # Half-life 3600 s: an hour later both have halved.
    clock.now += timedelta(hours=1)
    later = {s.tenant: s.decayed_usage for s in await store.tenant_scores()}
    assert later == {"x": pytest.approx(4.0), "y": pytest.approx(3.0)}


async def test_speed_table_is_rebuilt_from_the_database(database_url: str, store: SqlProfileStore) -> None:
    await store.ingest([metric(f"a{i}", 3.0, device_model="a100") for i in range(3)])
    await store.ingest([metric(f"h{i}", 1.0, device_model="h100") for i in range(4)])
    fresh = SqlProfileStore(create_engine(database_url, SCHEMA))
    try:
        table = await fresh.speed_table()
    finally:
        await fresh.close()
    # h100 has more samples now, so it is the reference; a100 is a third as fast.
    assert table.reference == "h100"
    assert table.speeds["a100"] == pytest.approx(1 / 3)


async def test_a_batch_folds_exactly_as_one_metric_at_a_time(store: SqlProfileStore) -> None:
    # The same metrics (interleaved keys and workers; resends, with other values, inside a
    # batch and across batches) go in one at a time under device model "seq" and in batches
    # of 50 under "batch": every figure must come out the same.
    ids = [*range(40), 5, 17, *range(40, 80), 2, 60, *range(80, 100), 99, 41]

    def stream(device: str) -> list[Metric]:
        return [
            metric(
                f"{device}-{n}", 0.01 + (i * 7919 % 1000) / 333, device_model=device, worker_id=f"w{i % 3}",
                batch_size=(4, 30, 64)[i // 7 % 3], items_per_second=float(i % 4), tenant=f"{device}-tenant",
            )
            for i, n in enumerate(ids)
        ]  # fmt: skip

    for m in stream("seq"):
        await store.ingest([m])
    batched = stream("batch")
    results = [await store.ingest(batched[i : i + 50]) for i in range(0, len(batched), 50)]
    assert [sum(r.duplicates) for r in results] == [2, 2, 2]
    profiles = [p for p in await store.all_profiles() if p.key.device_model == "seq"]
    assert len(profiles) == 3 and sum(p.count for p in profiles) == 100
    for seq in profiles:
        twin = await store.get_profile(replace(seq.key, device_model="batch"))
        assert twin is not None
        assert replace(twin, key=seq.key, updated_at=seq.updated_at) == seq  # every figure, exactly
        want = [
            (w.worker_id, replace(w.profile, updated_at=seq.updated_at))
            for w in await store.worker_profiles(seq.key)
        ]
        got = [(w.worker_id, replace(w.profile, key=seq.key, updated_at=seq.updated_at))
               for w in await store.worker_profiles(twin.key)]  # fmt: skip
        assert got == want and len(got) == 3


async def test_names_that_need_escaping_are_stored_as_given(store: SqlProfileStore) -> None:
    odd: dict[str, Any] = {
        "task_id": "t\\1",
        "worker_id": "w\\N",
        "tenant": "a\\tb",
        "model": ModelRef(name="m\\", version="\\\\"),
    }
    first = await store.ingest([metric("plain"), metric(**odd)])
    again = await store.ingest([metric(**odd)])
    assert list(first.duplicates) == [False, False] and list(again.duplicates) == [True]
    assert {r.worker_id for r in await store.resources()} == {"w1", "w\\N"}
    assert {s.tenant for s in await store.tenant_scores()} == {"acme", "a\\tb"}
    models = {p.key.model for p in await store.all_profiles()}
    assert models == {ModelRef(name="resnet", version="1"), ModelRef(name="m\\", version="\\\\")}


async def test_a_failed_first_transaction_does_not_break_later_ingest(store: SqlProfileStore) -> None:
    # The first transaction on a connection may create what later ones rely on (the
    # PostgreSQL path's staging table); a rollback undoes that, and ingest must recover.
    writer: Any = store._writer
    write = writer.write
    calls = 0

    async def fails_once(conn: Any, rows: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("the database went away mid-transaction")
        await write(conn, rows)

    writer.write = fails_once
    with pytest.raises(RuntimeError):
        await store.ingest([metric("t1", 1.0)])
    result = await store.ingest([metric("t1", 1.0), metric("t2", 2.0)])
    assert list(result.duplicates) == [False, False], "the failed batch left nothing behind"
    profile = await store.get_profile(KEY)
    assert profile is not None and profile.count == 2


async def test_ingests_share_one_connection_and_a_failure_replaces_it(store: SqlProfileStore) -> None:
    writer: Any = store._writer
    insert = writer.insert_samples
    seen: list[Any] = []
    fail = False

    async def recording(conn: Any, metrics: Any, now: Any, **options: Any) -> Any:
        seen.append(conn)
        if fail:
            raise RuntimeError("the statement failed")
        return await insert(conn, metrics, now, **options)

    writer.insert_samples = recording
    await store.ingest([metric("t1")])
    await store.ingest([metric("t2")])
    fail = True
    with pytest.raises(RuntimeError):
        await store.ingest([metric("t3")])
    fail = False
    result = await store.ingest([metric("t3"), metric("t1")])
    assert seen[0] is seen[1] is seen[2], "one connection for every ingest"
    assert seen[3] is not seen[2], "a failed ingest leaves its connection behind"
    assert list(result.duplicates) == [False, True]
    profile = await store.get_profile(KEY)
    assert profile is not None and profile.count == 3


async def test_resends_are_found_whether_inserted_optimistically_or_carefully(store: SqlProfileStore) -> None:
    writer: Any = store._writer
    insert = writer.insert_samples
    careful: list[bool] = []

    async def recording(conn: Any, metrics: Any, now: Any, **options: Any) -> Any:
        careful.append(options.get("careful", True))
        return await insert(conn, metrics, now, **options)

    writer.insert_samples = recording
    await store.ingest([metric("t1", 1.0), metric("t2", 2.0)])
    resent = await store.ingest([metric("t3", 3.0), metric("t2", 2.0), metric("t3", 3.0)])
    assert list(resent.duplicates) == [False, True, True]
    for i in range(4, 4 + CAREFUL_INGESTS + 1):
        assert list((await store.ingest([metric(f"t{i}", float(i))])).duplicates) == [False]
    profile = await store.get_profile(KEY)
    assert profile is not None and profile.count == 3 + CAREFUL_INGESTS + 1
    # Optimistic until resends come (on PostgreSQL they fail the optimistic COPY, and the
    # batch goes again, carefully); then careful for a while, then optimistic again.
    again = [True] if isinstance(store._writer, PostgresWriter) else []
    assert careful == [False, False, *again, *[True] * CAREFUL_INGESTS, False]
