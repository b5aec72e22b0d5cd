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


def fair_share_factor(usage_fraction: float, share_fraction: float, dampening: float = 1.0) -> float:
    """2^(-U/(S·d)); a tenant without a share gets the lowest factor.

    `dampening` d is Slurm's FairShareDampeningFactor: with thousands of tenants S is tiny,
    so every tenant above a few times its share gets a factor of about 0 and they can no
    longer be told apart; d > 1 keeps the order among them (1 = the classic factor)."""
    if share_fraction <= 0:
        return 0.0
    return float(2.0 ** (-max(usage_fraction, 0.0) / (share_fraction * max(dampening, 1.0))))


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


def in_flight_charge(started_at: float, now: float) -> float:
    """The usage a running task adds to its tenant's decayed usage at `now` (DESIGN §4): the
    seconds it has held its device so far, which is what its completion would charge if it
    finished now, so a tenant's usage does not jump when its task ends."""
    return max(now - started_at, 0.0)


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


def fixed_terms(task: TaskDemand, weights: PriorityWeights) -> float | None:
    """The category and QoS contributions when they do not change with time (no deadline),
    to hand to `priority_value` as `fixed` when one task is reprioritised many times."""
    if task.deadline is not None:
        return None
    category = min(max(task.priority_class, 0), MAX_PRIORITY_CLASS) / MAX_PRIORITY_CLASS
    return category * weights.category + QOS_CLASS_FACTOR.get(task.qos_class, 0.5) * weights.qos


def priority_value(
    task: TaskDemand, now: float, fair_share: float, weights: PriorityWeights, fixed: float | None = None
) -> float:
    """`priority` without building the breakdown, for reprioritising long queues: the same
    factors added in the same order, so the two agree exactly."""
    if fixed is None:
        category = min(max(task.priority_class, 0), MAX_PRIORITY_CLASS) / MAX_PRIORITY_CLASS
        fixed = category * weights.category + _qos_factor(task, now, weights) * weights.qos
    age = min(max(now - task.enqueued_at, 0.0) / weights.age_horizon_s, 1.0)
    return fixed + min(max(fair_share, 0.0), 1.0) * weights.fair_share + age * weights.age
