"""Batch folding (fold.py, ProfileStats.observe_many) gives bit-for-bit the figures of
one-at-a-time folding, and group commit (group_commit.py) shares transactions in order."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest

from common.tokens import sign_assignment
from services.profile_store import fold, usage
from services.profile_store.feed import ChangeFeed
from services.profile_store.group_commit import GroupCommit
from services.profile_store.model import IngestResult, Metric, ModelRef, Outcome, Precision
from services.profile_store.servicer import ProfileStoreServicer
from services.profile_store.stats import ProfileStats, QuantileSketch, batch_bucket
from services.profile_store.store import ProfileStore
from switchyard.v1 import profile_store_pb2, types_pb2

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def sequential(
    values: Sequence[tuple[float, float]], alpha: float, start: ProfileStats | None = None
) -> ProfileStats:
    stats = start.copy() if start is not None else ProfileStats()
    for seconds, throughput in values:
        stats.observe(seconds, throughput, alpha)
    return stats


def assert_identical(a: ProfileStats, b: ProfileStats) -> None:
    assert a.moments == b.moments  # exact: count, mean, m2
    assert a.ewma_seconds == b.ewma_seconds and a.items_per_second == b.items_per_second
    assert a.sketch == b.sketch and a.quantiles() == b.quantiles()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_observe_many_is_observe_in_turn(seed: int) -> None:
    rng = random.Random(seed)
    values = [
        (rng.lognormvariate(-2, 1.5) if rng.random() > 0.05 else 0.0, rng.choice([0.0, rng.random() * 100]))
        for _ in range(500)
    ]
    start = sequential(values[:37], 0.3)
    batched = start.copy()
    batched.observe_many(values[37:], 0.3)
    assert_identical(batched, sequential(values[37:], 0.3, start))
    assert start == sequential(values[:37], 0.3)  # the committed figures were not touched


def test_add_many_collapses_as_add_does() -> None:
    values = [10.0**e for e in range(-6, 7)] * 3 + [0.0, 1e-12]
    random.Random(4).shuffle(values)
    one, many = QuantileSketch(max_buckets=5), QuantileSketch(max_buckets=5)
    for v in values:
        one.add(v)
    many.add_many(values)
    assert many == one and many.count == len(values)
    with pytest.raises(ValueError):
        many.add_many([1.0, -1.0])


def metric(i: int, **fields: object) -> Metric:
    values: dict[str, object] = dict(
        task_id=f"t{i}", attempt=1, worker_id=f"w{i % 3}", device_model=("a100", "h100")[i % 2],
        model=ModelRef(name="resnet", version="1"), precision=Precision.FP16, batch_size=(8, 30, 32)[i % 3],
        category="inference", tenant=f"tenant{i % 4}", execution_time_s=0.1 + (i * 7919 % 1000) / 997,
        items_per_second=float(i % 5), outcome=Outcome.SUCCEEDED,
    )  # fmt: skip
    values.update(fields)
    return Metric(**values)  # type: ignore[arg-type]


def group_key(m: Metric) -> fold.GroupKey:
    model = m.model
    return (m.device_model, model.name, model.version, m.precision, batch_bucket(m.batch_size), m.category)


def test_groups_keep_arrival_order_and_fold_like_one_at_a_time() -> None:
    metrics = [metric(i) for i in range(200)]
    metrics[5] = metric(5, outcome=Outcome.FAILED)
    metrics[6] = metric(6, execution_time_s=None, outcome=Outcome.CANCELLED)
    profiled = [m for m in metrics if m.outcome is Outcome.SUCCEEDED]
    groups = fold.group(metrics)
    assert len(groups.profiles) == 4 and len(groups.workers) == 6  # w0 runs batch 8, w1 and w2 batch 32
    for key, samples in groups.profiles.items():
        mine = [m for m in profiled if group_key(m) == key]
        assert samples == [(m.execution_time_s, m.throughput) for m in mine]
        assert fold.profile_key(key) == mine[0].profile_key
        assert_identical(fold.fold(None, samples, 0.2), sequential(samples, 0.2))
    for (key, worker), samples in groups.workers.items():
        mine = [m for m in profiled if group_key(m) == key and m.worker_id == worker]
        assert samples == [(m.execution_time_s, m.throughput) for m in mine]


def test_tenant_charge_and_decay_arithmetic() -> None:
    metrics = [metric(i) for i in range(40)]
    speeds = {"h100": 2.0}
    charges = fold.tenant_charges(metrics, speeds)
    for tenant, amount in charges.items():
        expected = 0.0
        for m in metrics:
            if m.tenant == tenant:
                expected += usage.usage_charge(m.execution_time_s or 0.0, m.device_model, speeds)
        assert amount == expected
    committed = {"tenant0": (8.0, NOW - timedelta(hours=2))}
    charged = fold.charge(committed, {"tenant0": 1.0, "new": 3.0}, NOW, 3600.0)
    assert charged == {"tenant0": (2.0 + 1.0, NOW), "new": (3.0, NOW)}
    scores = {s.tenant: s for s in fold.scores({**committed, **charged}, {}, NOW, 3600.0)}
    assert scores["tenant0"].decayed_usage == 3.0 and scores["new"].usage_score == pytest.approx(1.0)


class SlowStore:
    """Records each ingest call; the first one waits until released (the ingest part of a
    `ProfileStore`, all that group commit uses)."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.release = asyncio.Event()
        self.fail = False
        self.seen: set[str] = set()

    async def ingest(self, metrics: Sequence[Metric]) -> IngestResult:
        self.calls.append([m.task_id for m in metrics])
        if len(self.calls) == 1:
            await self.release.wait()
        if self.fail:
            raise RuntimeError("database down")
        duplicates = []
        for m in metrics:
            duplicates.append(m.task_id in self.seen)
            self.seen.add(m.task_id)
        return IngestResult(duplicates=duplicates)


async def test_requests_that_arrive_during_a_commit_share_the_next_in_order() -> None:
    store = SlowStore()
    commits = GroupCommit(cast(ProfileStore, store), ChangeFeed(0.01), max_metrics=5)
    first = commits.submit([metric(0)])
    await asyncio.sleep(0)  # the first transaction is under way
    later = [commits.submit([metric(i), metric(i + 10)]) for i in (1, 2, 3)]
    again = commits.submit([metric(1), metric(99)])  # t1 again: a duplicate one group later
    assert not first.done() and store.calls == [["t0"]]
    store.release.set()
    assert await first == [False]
    assert [await f for f in later] == [[False, False]] * 3
    assert await again == [True, False]
    # Whole requests, at most 5 metrics each (unless one is larger), in submission order.
    assert store.calls == [["t0"], ["t1", "t11", "t2", "t12"], ["t3", "t13", "t1", "t99"]]
    assert (await commits.submit([])) == []
    await commits.close()


async def test_a_failed_commit_fails_every_request_of_its_group() -> None:
    store = SlowStore()
    store.fail = True
    commits = GroupCommit(cast(ProfileStore, store), ChangeFeed(0.01))
    first = commits.submit([metric(0)])
    await asyncio.sleep(0)
    grouped = [commits.submit([metric(i)]) for i in (1, 2)]
    store.release.set()
    for future in (first, *grouped):
        with pytest.raises(RuntimeError, match="database down"):
            await future
    assert store.calls == [["t0"], ["t1", "t2"]]


async def test_a_failed_commit_ends_the_stream_and_nothing_is_acked() -> None:
    store = SlowStore()
    store.fail = True
    store.release.set()
    servicer = ProfileStoreServicer(
        cast(ProfileStore, store), ChangeFeed(0.01), internal_token="s", batch_max=10
    )

    async def requests() -> AsyncIterator[profile_store_pb2.IngestMetricsRequest]:
        for i in range(3):
            m = types_pb2.ResultMetrics(
                task_id=f"t{i}", attempt=1, worker_id="w", device_model="d", category="c", tenant="x",
                outcome=types_pb2.OUTCOME_FAILED, assignment_token=sign_assignment("s", f"t{i}", 1, "w"),
            )  # fmt: skip
            yield profile_store_pb2.IngestMetricsRequest(metrics=[m])

    responses = []
    with pytest.raises(RuntimeError, match="database down"):
        async for response in servicer.IngestMetrics(requests(), None):  # type: ignore[arg-type]
            responses.append(response)
    assert responses == [] and store.calls[0][0] == "t0"  # t1, t2 may have shared its transaction
    await servicer.close()
