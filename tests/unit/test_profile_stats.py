"""Profile arithmetic against numpy: Welford, EWMA, the quantile sketch, buckets, fair share."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from services.profile_store import usage
from services.profile_store.stats import (
    RELATIVE_ACCURACY,
    ProfileStats,
    QuantileSketch,
    Welford,
    batch_bucket,
    ewma,
)


def _welford(values: list[float]) -> Welford:
    w = Welford()
    for v in values:
        w = w.add(v)
    return w


@pytest.mark.parametrize("n", [1, 2, 10, 1000])
def test_welford_matches_numpy(n: int) -> None:
    rng = np.random.default_rng(n)
    values = list(rng.lognormal(mean=0.0, sigma=1.0, size=n) + 1e6)  # large offset: a precision trap
    w = _welford(values)
    assert w.count == n
    assert w.mean == pytest.approx(np.mean(values), rel=1e-12)
    expected_var = float(np.var(values, ddof=1)) if n > 1 else 0.0
    assert w.variance == pytest.approx(expected_var, rel=1e-6, abs=1e-12)


def test_welford_merge_equals_sequential() -> None:
    rng = np.random.default_rng(7)
    a, b = list(rng.normal(5, 2, 300)), list(rng.normal(9, 1, 200))
    merged = _welford(a).merge(_welford(b))
    whole = _welford(a + b)
    assert merged.count == whole.count
    assert merged.mean == pytest.approx(whole.mean, rel=1e-12)
    assert merged.variance == pytest.approx(whole.variance, rel=1e-9)
    assert Welford().merge(whole) == whole and whole.merge(Welford()) == whole


def test_ewma_matches_recursive_definition_and_follows_a_change() -> None:
    alpha = 0.2
    values = [1.0] * 50 + [3.0] * 50
    value: float | None = None
    expected = values[0]
    for i, x in enumerate(values):
        value = ewma(value, x, alpha)
        if i > 0:
            expected = alpha * x + (1 - alpha) * expected
        assert value == pytest.approx(expected)
    assert value == pytest.approx(3.0, rel=1e-3)  # the device slowed down; the EWMA followed


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("dist", ["lognormal", "uniform", "exponential"])
def test_sketch_quantiles_within_relative_accuracy(seed: int, dist: str) -> None:
    rng = np.random.default_rng(seed)
    data = {
        "lognormal": rng.lognormal(-2, 1.5, 5000),
        "uniform": rng.uniform(0.001, 10, 5000),
        "exponential": rng.exponential(0.5, 5000),
    }[dist]
    sketch = QuantileSketch()
    for x in data:
        sketch.add(float(x))
    ordered = np.sort(data)
    for q in (0.0, 0.1, 0.5, 0.9, 0.95, 0.99, 1.0):
        exact = float(ordered[math.floor(q * (len(data) - 1))])
        assert abs(sketch.quantile(q) - exact) <= RELATIVE_ACCURACY * exact * (1 + 1e-9), q


def test_sketch_merge_equals_sketch_of_union() -> None:
    rng = random.Random(5)
    a, b = [rng.expovariate(2) for _ in range(700)], [rng.expovariate(0.1) for _ in range(400)]
    left, right, union = QuantileSketch(), QuantileSketch(), QuantileSketch()
    for x in a:
        left.add(x)
        union.add(x)
    for x in b:
        right.add(x)
        union.add(x)
    left.merge(right)
    assert left == union
    assert left.count == 1100
    for q in (0.5, 0.95, 0.99):
        assert left.quantile(q) == union.quantile(q)


def test_sketch_serialisation_round_trip() -> None:
    sketch = QuantileSketch()
    for x in [0.0, 1e-12, 0.003, 0.5, 0.5, 2.0, 3600.0]:
        sketch.add(x)
    again = QuantileSketch.from_bytes(sketch.to_bytes())
    assert again == sketch and again.count == 7 and again.zero_count == 2
    assert QuantileSketch.from_bytes(QuantileSketch().to_bytes()) == QuantileSketch()


def test_sketch_edge_cases() -> None:
    empty = QuantileSketch()
    assert empty.quantile(0.5) == 0.0
    with pytest.raises(ValueError):
        empty.add(-1.0)
    with pytest.raises(ValueError):
        empty.add(math.nan)
    with pytest.raises(ValueError):
        empty.merge(QuantileSketch(0.05))
    bounded = QuantileSketch(max_buckets=16)
    for i in range(1, 200):
        bounded.add(1.1**i)
    assert len(bounded.buckets) <= 16 and bounded.count == 199
    top = 1.1**199
    assert abs(bounded.quantile(1.0) - top) <= RELATIVE_ACCURACY * top * (1 + 1e-9)


@pytest.mark.parametrize(
    ("size", "bucket"), [(0, 1), (1, 1), (2, 2), (3, 4), (4, 4), (5, 8), (64, 64), (65, 128), (1000, 1024)]
)
def test_batch_bucket_is_next_power_of_two(size: int, bucket: int) -> None:
    assert batch_bucket(size) == bucket


def test_profile_stats_observe() -> None:
    stats = ProfileStats()
    for seconds in (1.0, 2.0, 3.0):
        stats.observe(seconds, throughput=10 / seconds, alpha=0.5)
    assert stats.moments.count == 3 and stats.moments.mean == pytest.approx(2.0)
    assert stats.ewma_seconds == pytest.approx(0.5 * 3 + 0.25 * 2 + 0.25 * 1)
    p50, _p95, p99 = stats.quantiles()
    assert p50 == pytest.approx(2.0, rel=RELATIVE_ACCURACY)
    # rank q * (n - 1) = 1.98 → the second smallest sample (numpy's "lower" method)
    assert p99 == pytest.approx(2.0, rel=RELATIVE_ACCURACY)


def test_decay_and_fair_share() -> None:
    assert usage.decay(8.0, 7200, 3600) == pytest.approx(2.0)
    assert usage.decay(8.0, -5, 3600) == 8.0
    assert usage.usage_charge(3.0, "any-device") == 3.0
    assert usage.usage_charge(3.0, "h100", {"h100": 4.0}) == 12.0
    scores = {s.tenant: s for s in usage.tenant_scores({"a": 30.0, "b": 10.0, "c": 0.0})}
    # U = 0.75, S = 1/3 → U/S = 2.25
    assert scores["a"].usage_score == pytest.approx(2.25)
    assert scores["a"].fair_share_factor == pytest.approx(2**-2.25)
    assert scores["c"].fair_share_factor == 1.0 and scores["c"].share == 1.0
    at_share = usage.tenant_scores({"a": 1.0, "b": 1.0})
    assert [s.fair_share_factor for s in at_share] == [pytest.approx(0.5), pytest.approx(0.5)]
    idle = usage.tenant_scores({}, {"x": 2.0})
    assert idle[0].fair_share_factor == 1.0 and idle[0].share == 2.0
