"""The multifactor priority of a queued task (DESIGN §4).

Each factor lies in [0, 1]; the priority is the weighted sum. Fair share follows Slurm's
classic factor: with U the tenant's share of all decayed usage and S its share of all
shares, the usage score is U/S and the factor 2^(-U/S) (1 when idle, 0.5 at its share).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from services.scheduler.core.model import QosClass, TaskDemand

MAX_PRIORITY_CLASS = 100
QOS_CLASS_FACTOR = {
    QosClass.LATENCY_CRITICAL: 1.0,
    QosClass.STANDARD: 0.5,
    QosClass.UNSPECIFIED: 0.5,
    QosClass.BATCH: 0.1,
}


@dataclass(frozen=True)
class PriorityWeights:
    category: float = 1000.0
    qos: float = 500.0
    fair_share: float = 1000.0
    age: float = 100.0
    # Age at which the age factor reaches 1.
    age_horizon_s: float = 600.0
    # Deadline slack at which urgency is 0.5.
    slack_scale_s: float = 60.0


@dataclass(frozen=True)
class Factor:
    name: str
    value: float
    weight: float

    @property
    def contribution(self) -> float:
        return self.value * self.weight


def fair_share_factor(usage_fraction: float, share_fraction: float) -> float:
    """2^(-U/S); a tenant without a share gets the lowest factor."""
    if share_fraction <= 0:
        return 0.0
    return float(2.0 ** (-max(usage_fraction, 0.0) / share_fraction))


def usage_scores(usage: Mapping[str, float], shares: Mapping[str, float]) -> dict[str, float]:
    """U/S per tenant over the union of tenants (share 1 by default)."""
    tenants = set(usage) | set(shares)
    total_usage = sum(max(usage.get(t, 0.0), 0.0) for t in tenants)
    total_share = sum(shares.get(t, 1.0) for t in tenants)
    out: dict[str, float] = {}
    for t in tenants:
        u = usage.get(t, 0.0) / total_usage if total_usage > 0 else 0.0
        s = shares.get(t, 1.0) / total_share if total_share > 0 else 0.0
        out[t] = u / s if s > 0 else math.inf
    return out


def decay(value: float, elapsed_s: float, half_life_s: float) -> float:
    if half_life_s <= 0:
        return value
    return float(value * 0.5 ** (max(elapsed_s, 0.0) / half_life_s))


def _qos_factor(task: TaskDemand, now: float, weights: PriorityWeights) -> float:
    base = QOS_CLASS_FACTOR.get(task.qos_class, 0.5)
    if task.deadline is None:
        return base
    slack = task.deadline - now
    urgency = 1.0 if slack <= 0 else weights.slack_scale_s / (weights.slack_scale_s + slack)
    return max(base, urgency)


def factors(task: TaskDemand, now: float, fair_share: float, weights: PriorityWeights) -> list[Factor]:
    """The per-factor breakdown shown by Explain."""
    category = min(max(task.priority_class, 0), MAX_PRIORITY_CLASS) / MAX_PRIORITY_CLASS
    age = min(max(now - task.enqueued_at, 0.0) / weights.age_horizon_s, 1.0)
    return [
        Factor("category", category, weights.category),
        Factor("qos", _qos_factor(task, now, weights), weights.qos),
        Factor("fair_share", min(max(fair_share, 0.0), 1.0), weights.fair_share),
        Factor("age", age, weights.age),
    ]


def priority(task: TaskDemand, now: float, fair_share: float, weights: PriorityWeights) -> float:
    return sum(f.contribution for f in factors(task, now, fair_share, weights))
