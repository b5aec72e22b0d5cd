"""Pre-warmed profiles and the fair-share usage accounting the simulated scheduler reads."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from services.scheduler.core.model import ProfileEstimate, ProfileKey
from services.scheduler.core.placement import batch_bucket
from services.scheduler.core.priority import fair_share_factor
from services.scheduler.simulator.model import Arrival, SpeedTable

WorkKey = tuple[str, int, int, str]


def work_key(arrival: Arrival) -> WorkKey:
    d = arrival.demand
    return (d.model, d.precision, batch_bucket(d.batch_size), d.category)


def mean_work(arrivals: Iterable[Arrival]) -> dict[WorkKey, float]:
    """The mean reference work of each profile key (model, precision, bucket, category)."""
    sums: dict[WorkKey, list[float]] = {}
    for a in arrivals:
        acc = sums.setdefault(work_key(a), [0.0, 0.0])
        acc[0] += a.work
        acc[1] += 1
    return {k: s / n for k, (s, n) in sums.items()}


class SpeedProfiles:
    """An `Estimator`: mean work of the key divided by the device's speed (warm, count 100)."""

    def __init__(self, speeds: SpeedTable, mean: Mapping[WorkKey, float]) -> None:
        self.speeds = speeds
        self.mean = mean
        self._memo: dict[ProfileKey, ProfileEstimate | None] = {}

    def estimate(self, key: ProfileKey) -> ProfileEstimate | None:
        if key in self._memo:
            return self._memo[key]
        work = self.mean.get((key.model, key.precision, key.batch_bucket, key.category))
        found = None
        if work is not None:
            found = ProfileEstimate(work / self.speeds.speed(key.device_model, key.category), 100)
        self._memo[key] = found
        return found


class FairShareBook:
    """Decayed usage per tenant, as the scheduler's ProfileCache keeps it, in O(1) per query.

    Every tenant's usage decays by the same factor, so U (a tenant's fraction of all usage)
    is unchanged if usage is stored scaled by 2^(t/half-life) instead of decayed: a charge
    adds seconds·2^(t/h), and U = scaled / total. The scale is rebased before it overflows.
    As in the service, the tenants counted for S are those with usage or a share."""

    _REBASE = 512.0

    def __init__(self, half_life_s: float, shares: Mapping[str, float] | None = None) -> None:
        self.half_life_s = half_life_s
        self.shares = dict(shares or {})
        self._scaled: dict[str, float] = {}
        self._total = 0.0
        self._origin = 0.0
        self._share_total = sum(self.shares.values())

    def charge(self, tenant: str, seconds: float, now: float) -> None:
        exponent = (now - self._origin) / self.half_life_s if self.half_life_s > 0 else 0.0
        if exponent > self._REBASE:
            factor = 2.0**-exponent
            self._scaled = {t: v * factor for t, v in self._scaled.items()}
            self._total *= factor
            self._origin = now
            exponent = 0.0
        if tenant not in self._scaled:
            self._scaled[tenant] = 0.0
            if tenant not in self.shares:
                self._share_total += 1.0
        add = seconds * 2.0**exponent
        self._scaled[tenant] += add
        self._total += add

    def usage_score(self, tenant: str) -> float:
        scaled = self._scaled.get(tenant)
        if scaled is None or self._total <= 0:
            return 0.0
        share = self.shares.get(tenant, 1.0) / self._share_total if self._share_total > 0 else 0.0
        return (scaled / self._total) / share if share > 0 else math.inf

    def factor(self, tenant: str) -> float:
        return fair_share_factor(self.usage_score(tenant), 1.0)
