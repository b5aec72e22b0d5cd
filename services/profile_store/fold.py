"""One batch of new metrics folded into profile figures and tenant usage, pure (no I/O).

Metrics are grouped by profile key (and by key and worker) in arrival order, so every
profile sees its samples in the order one-at-a-time ingest would give them (the EWMA
depends on it) and ends with exactly the figures that ingest would give: one row per key
per batch, the same numbers.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.profile_store import usage
from services.profile_store.model import Metric, ModelRef, Outcome, Precision, ProfileKey, TenantScore
from services.profile_store.stats import ProfileStats, batch_bucket

# (device model, model name, model version, precision, batch bucket, category)
GroupKey = tuple[str, str, str, Precision, int, str]
# A tenant's decayed usage (reference-device-seconds) as of a time.
Usage = tuple[float, datetime]


def first_occurrences(metrics: Sequence[Metric]) -> dict[tuple[str, int], int]:
    """(task id, attempt) → index of its first metric in the batch (later ones are resends)."""
    first: dict[tuple[str, int], int] = {}
    for i, m in enumerate(metrics):
        first.setdefault((m.task_id, m.attempt), i)
    return first


# A profiled sample: (execution seconds, items per second).
Sample = tuple[float, float]


@dataclass
class Groups:
    """The profiled samples of a batch by profile key and by (key, worker), in order."""

    profiles: dict[GroupKey, list[Sample]] = field(default_factory=dict)
    workers: dict[tuple[GroupKey, str], list[Sample]] = field(default_factory=dict)


def group(metrics: Sequence[Metric]) -> Groups:
    """Only SUCCEEDED metrics with an execution time update profiles."""
    groups = Groups()
    profiles, workers = groups.profiles, groups.workers
    buckets: dict[int, int] = {}
    for m in metrics:
        seconds = m.execution_time_s
        if m.outcome is not Outcome.SUCCEEDED or seconds is None:
            continue
        bucket = buckets.get(m.batch_size)
        if bucket is None:
            bucket = buckets[m.batch_size] = batch_bucket(m.batch_size)
        model = m.model
        key = (m.device_model, model.name, model.version, m.precision, bucket, m.category)
        sample = (seconds, m.throughput)
        samples = profiles.get(key)
        if samples is None:
            samples = profiles[key] = []
        samples.append(sample)
        by_worker = workers.get((key, m.worker_id))
        if by_worker is None:
            by_worker = workers[(key, m.worker_id)] = []
        by_worker.append(sample)
    return groups


def profile_key(key: GroupKey) -> ProfileKey:
    device_model, name, version, precision, bucket, category = key
    return ProfileKey(
        device_model=device_model,
        model=ModelRef(name=name, version=version),
        precision=precision,
        batch_bucket=bucket,
        category=category,
    )


def fold(committed: ProfileStats | None, samples: Sequence[Sample], alpha: float) -> ProfileStats:
    """The committed figures (left untouched: they stay the cached truth until commit) with
    `samples` folded in, in order."""
    stats = committed.copy() if committed is not None else ProfileStats()
    stats.observe_many(samples, alpha)
    return stats


def tenant_charges(metrics: Sequence[Metric], speeds: Mapping[str, float]) -> dict[str, float]:
    """Reference-device-seconds per tenant: every stored metric with an execution time."""
    charges: dict[str, float] = defaultdict(float)
    speed_of: dict[str, float] = {}  # a batch holds a few device models
    for m in metrics:
        seconds = m.execution_time_s
        if seconds is not None:
            speed = speed_of.get(m.device_model)
            if speed is None:
                speed = speed_of[m.device_model] = usage.reference_speed(m.device_model, speeds)
            charges[m.tenant] += max(seconds, 0.0) * speed  # usage.usage_charge, inlined
    return charges


def decayed(value: Usage, now: datetime, half_life_s: float) -> float:
    usage_s, since = value
    return usage.decay(usage_s, (now - since).total_seconds(), half_life_s)


def charge(
    committed: Mapping[str, Usage], charges: Mapping[str, float], now: datetime, half_life_s: float
) -> dict[str, Usage]:
    """The charged tenants' usage as of now: the committed usage decayed to now, plus the
    batch's charge."""
    out: dict[str, Usage] = {}
    for tenant, amount in sorted(charges.items()):
        old = committed.get(tenant)
        base = decayed(old, now, half_life_s) if old is not None else 0.0
        out[tenant] = (base + amount, now)
    return out


def scores(
    usages: Mapping[str, Usage], shares: Mapping[str, float], now: datetime, half_life_s: float
) -> list[TenantScore]:
    """Every tenant's score with all usage decayed to the same instant."""
    return usage.tenant_scores({t: decayed(u, now, half_life_s) for t, u in usages.items()}, shares)


class StatsCache:
    """Least-recently-used map of profile key id (or (key id, worker)) to committed stats."""

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

    def clear(self) -> None:
        self._items.clear()
