"""The scheduler's fair-share factor: published usage, in-flight charge, local accounting."""

from __future__ import annotations

import pytest

from services.scheduler.profiles import FAIR_TTL_S, ProfileCache
from switchyard.v1 import types_pb2

HALF_LIFE = 3600.0
T0 = 1_700_000_000.0


def score(tenant: str, usage: float) -> types_pb2.TenantScore:
    return types_pb2.TenantScore(tenant=tenant, decayed_usage=usage)


def factor(u_over_s: float) -> float:
    return float(2.0 ** (-u_over_s))


def cache_with(shares: dict[str, float], published: dict[str, float]) -> ProfileCache:
    cache = ProfileCache(HALF_LIFE)
    cache.shares = dict(shares)
    cache.apply_scores([score(t, u) for t, u in published.items()], snapshot=True, now=T0)
    return cache


def test_published_usage_alone_gives_the_classic_factor() -> None:
    cache = cache_with({"a": 1, "b": 3}, {"a": 300.0, "b": 100.0})
    # U_a = 300/400, S_a = 1/4 -> U/S = 3; U_b = 100/400, S_b = 3/4 -> U/S = 1/3.
    assert cache.fair_share("a", T0) == pytest.approx(factor(3.0))
    assert cache.fair_share("b", T0) == pytest.approx(factor(1 / 3))


def test_a_running_task_charges_its_tenant_in_flight() -> None:
    cache = cache_with({"a": 1, "b": 1}, {"a": 100.0, "b": 100.0})
    assert cache.fair_share("a", T0) == pytest.approx(cache.fair_share("b", T0))
    cache.started("t1", "a", started_at=T0)
    now = T0 + 2 * FAIR_TTL_S + 100.0
    decayed = 100.0 * 0.5 ** ((now - T0) / HALF_LIFE)
    in_flight = now - T0
    total = 2 * decayed + in_flight
    assert cache.fair_share("a", now) == pytest.approx(factor(((decayed + in_flight) / total) / 0.5))
    assert cache.fair_share("b", now) == pytest.approx(factor((decayed / total) / 0.5))
    assert cache.fair_share("a", now) < cache.fair_share("b", now)


def test_stopping_a_task_ends_its_in_flight_charge() -> None:
    cache = cache_with({"a": 1, "b": 1}, {"a": 100.0, "b": 100.0})
    cache.started("t1", "a", started_at=T0)
    later = T0 + 500.0
    assert cache.fair_share("a", later) < cache.fair_share("b", later)
    cache.stopped("t1")
    again = later + 2 * FAIR_TTL_S
    assert cache.fair_share("a", again) == pytest.approx(cache.fair_share("b", again))


def test_completed_work_counts_until_the_tenant_s_next_published_score() -> None:
    cache = cache_with({"a": 1, "b": 1}, {"a": 100.0, "b": 100.0})
    cache.charge("a", 50.0, T0)
    after = T0 + 2 * FAIR_TTL_S
    assert cache.fair_share("a", after) < cache.fair_share("b", after)
    # The profile store's next score for a includes that work: nothing is counted twice.
    cache.apply_scores([score("a", 150.0)], snapshot=False, now=after)
    decayed_b = 100.0 * 0.5 ** ((after - T0) / HALF_LIFE)
    total = 150.0 + decayed_b
    assert cache.fair_share("a", after) == pytest.approx(factor((150.0 / total) / 0.5))


def test_without_published_scores_the_scheduler_accounts_for_itself() -> None:
    cache = ProfileCache(HALF_LIFE)
    cache.shares = {"a": 1.0, "b": 1.0}
    assert cache.fair_share("a", T0) == 1.0  # nobody has used anything yet
    cache.charge("a", 60.0, T0)
    cache.started("t2", "b", started_at=T0)
    now = T0 + 2 * FAIR_TTL_S + 20.0
    usage = cache.usage(now)
    assert usage["a"] == pytest.approx(60.0 * 0.5 ** ((now - T0) / HALF_LIFE))
    assert usage["b"] == pytest.approx(now - T0)


def test_dampening_keeps_heavy_tenants_apart() -> None:
    shares = {f"t{i}": 1.0 for i in range(1000)}
    usage = {"heavy": 500.0, "heavier": 1000.0}
    classic = cache_with(shares, usage)
    damped = ProfileCache(HALF_LIFE, dampening=100.0)
    damped.shares = dict(shares)
    damped.apply_scores([score(t, u) for t, u in usage.items()], snapshot=True, now=T0)
    # 1,002 tenants: S = 1/1002, so U/S is in the hundreds and both classic factors are ~0.
    assert classic.fair_share("heavy", T0) < 1e-100 and classic.fair_share("heavier", T0) < 1e-100
    u_heavy, u_heavier = 500.0 / 1500.0 * 1002, 1000.0 / 1500.0 * 1002
    assert damped.fair_share("heavy", T0) == pytest.approx(2.0 ** (-u_heavy / 100))
    assert damped.fair_share("heavier", T0) == pytest.approx(2.0 ** (-u_heavier / 100))
    assert damped.fair_share("heavier", T0) < damped.fair_share("heavy", T0) < damped.fair_share("t1", T0)


def test_completed_work_not_yet_published_decays_with_the_half_life() -> None:
    cache = cache_with({"a": 1, "b": 1}, {"a": 0.0, "b": 0.0})
    cache.charge("a", 100.0, T0)
    later = T0 + HALF_LIFE
    assert cache.usage(later)["a"] == pytest.approx(50.0)


def test_a_broken_scores_stream_falls_back_to_the_scheduler_s_own_accounting() -> None:
    cache = cache_with({"a": 1, "b": 1}, {"a": 1000.0, "b": 0.0})
    cache.charge("b", 30.0, T0)
    assert cache.usage(T0)["a"] == pytest.approx(1000.0)
    cache.scores_lost()
    usage = cache.usage(T0)
    assert usage.get("a", 0.0) == 0.0 and usage["b"] == pytest.approx(30.0)
    assert cache.fair_share("b", T0) < cache.fair_share("a", T0)
