"""Pre-warmed profiles and the fair-share usage accounting the simulated scheduler reads."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from services.scheduler.core.model import ProfileEstimate, ProfileKey
from services.scheduler.core.placement import batch_bucket
from services.scheduler.core.priority import fair_share_factor, in_flight_charge
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
    """Decayed usage per tenant, as the scheduler's ProfileCache keeps it, in O(1) per query,
    plus the in-flight charge of running tasks (DESIGN §4).

    Every tenant's usage decays by the same factor, so U (a tenant's fraction of all usage)
    is unchanged if usage is stored scaled by 2^(t/half-life) instead of decayed: a charge
    adds seconds·2^(t/h), and U = scaled / total. The scale is rebased before it overflows.
    Running tasks add `in_flight_charge` (seconds held so far), kept per tenant as a count
    and a sum of start times, since Σ(now - start) = count·now - Σ start. As in the service,
    the tenants counted for S are those with usage (completed or in flight) or a share."""

    _REBASE = 512.0

    def __init__(
        self,
        half_life_s: float,
        shares: Mapping[str, float] | None = None,
        *,
        in_flight: bool = True,
        dampening: float = 1.0,
    ) -> None:
        self.half_life_s = half_life_s
        self.shares = dict(shares or {})
        self.in_flight = in_flight
        self.dampening = dampening
        self._scaled: dict[str, float] = {}
        self._total = 0.0
        self._origin = 0.0
        self._share_total = sum(self.shares.values())
        # tenant -> [running tasks, sum of their start times]; and the same over all tenants
        self._running: dict[str, list[float]] = {}
        self._all_running = [0.0, 0.0]
        # Bumped whenever S changes (a new tenant), so factors cached at an instant stay exact.
        self.version = 0

    def start(self, tenant: str, now: float) -> None:
        """A task of `tenant` starts holding a device at `now`."""
        self._register(tenant)
        if self.in_flight:
            acc = self._running.setdefault(tenant, [0.0, 0.0])
            for a in (acc, self._all_running):
                a[0] += 1
                a[1] += now

    def finish(self, tenant: str, started_at: float, now: float) -> None:
        """It ends: the in-flight charge becomes a completed charge of the same seconds."""
        if self.in_flight:
            acc = self._running[tenant]
            for a in (acc, self._all_running):
                a[0] -= 1
                a[1] -= started_at
            if acc[0] == 0:
                del self._running[tenant]
        self.charge(tenant, in_flight_charge(started_at, now), now)

    def charge(self, tenant: str, seconds: float, now: float) -> None:
        scale = self._scale(now)
        self._register(tenant)
        add = seconds * scale
        self._scaled[tenant] += add
        self._total += add

    def usage_score(self, tenant: str, now: float | None = None) -> float:
        scaled = self._scaled.get(tenant)
        if scaled is None:
            return 0.0
        total = self._total
        if self.in_flight and now is not None and self._all_running[0] > 0:
            scale = self._scale(now)
            scaled += scale * _held(self._running.get(tenant), now)
            total += scale * _held(self._all_running, now)
        if total <= 0:
            return 0.0
        share = self.shares.get(tenant, 1.0) / self._share_total if self._share_total > 0 else 0.0
        return (scaled / total) / share if share > 0 else math.inf

    def factor(self, tenant: str, now: float | None = None) -> float:
        return fair_share_factor(self.usage_score(tenant, now), 1.0, self.dampening)

    def _register(self, tenant: str) -> None:
        if tenant not in self._scaled:
            self._scaled[tenant] = 0.0
            if tenant not in self.shares:
                self._share_total += 1.0
                self.version += 1

    def _scale(self, now: float) -> float:
        exponent = (now - self._origin) / self.half_life_s if self.half_life_s > 0 else 0.0
        if exponent > self._REBASE:
            factor = 2.0**-exponent
            self._scaled = {t: v * factor for t, v in self._scaled.items()}
            self._total *= factor
            self._origin = now
            exponent = 0.0
        return float(2.0**exponent)


def _held(acc: list[float] | None, now: float) -> float:
    """Σ in_flight_charge(start, now) over the running tasks counted in `acc`."""
    return 0.0 if acc is None else max(acc[0] * now - acc[1], 0.0)
