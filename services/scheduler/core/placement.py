"""Where a task runs: the eligible, available worker with the earliest predicted completion.

predicted completion = now + wait on the worker + transfer of missing inputs + execution
time from the profile (device model, model, precision, batch-size bucket, category).
Wait is zero on a free slot; transfer stays zero until datablock locality lands (DESIGN §4
leaves it for later, but it has its place here). Cold profiles use a prior.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from services.scheduler.core.model import (
    KINDS_FOR_GROUP,
    Kind,
    ProfileEstimate,
    ProfileKey,
    TaskDemand,
    WorkerSlots,
)


class Estimator(Protocol):
    def estimate(self, key: ProfileKey) -> ProfileEstimate | None: ...


def batch_bucket(batch_size: int) -> int:
    """The next power of two at or above the batch size (1 for zero or one)."""
    bucket = 1
    while bucket < batch_size:
        bucket *= 2
    return bucket


@dataclass(frozen=True)
class Priors:
    """Execution-time guesses for keys nobody has measured yet (seconds)."""

    cpu_seconds: float = 1.0
    gpu_seconds: float = 0.5
    per_category: Mapping[str, float] = field(default_factory=dict)

    def seconds(self, kind: Kind, category: str) -> float:
        base = self.per_category.get(category)
        if base is not None:
            return base if kind is Kind.CPU else base / 2
        return self.cpu_seconds if kind is Kind.CPU else self.gpu_seconds


@dataclass(frozen=True)
class Prediction:
    worker: WorkerSlots
    wait_s: float
    transfer_s: float
    execution_s: float
    cold: bool

    @property
    def total_s(self) -> float:
        return self.wait_s + self.transfer_s + self.execution_s


def fits(task: TaskDemand, worker: WorkerSlots) -> bool:
    """Static eligibility: kind, category, precision, memory, not draining."""
    if worker.kind not in KINDS_FOR_GROUP[task.group] or worker.draining:
        return False
    if worker.categories and task.category not in worker.categories:
        return False
    if task.precision and worker.precisions and task.precision not in worker.precisions:
        return False
    if task.memory_bytes and worker.memory_bytes and task.memory_bytes > worker.memory_bytes:
        return False
    return not (
        task.gpu_memory_bytes and worker.gpu_memory_bytes and task.gpu_memory_bytes > worker.gpu_memory_bytes
    )


def predict(task: TaskDemand, worker: WorkerSlots, estimator: Estimator, priors: Priors) -> Prediction:
    key = ProfileKey(
        worker.device_model, task.model, task.precision, batch_bucket(task.batch_size), task.category
    )
    found = estimator.estimate(key)
    cold = found is None or found.count == 0
    execution = priors.seconds(worker.kind, task.category) if found is None or cold else found.seconds
    return Prediction(worker, wait_s=0.0, transfer_s=0.0, execution_s=execution, cold=cold)


def best_worker(
    task: TaskDemand,
    classes: Iterable[list[WorkerSlots]],
    taken: Mapping[str, int],
    estimator: Estimator,
    priors: Priors,
) -> Prediction | None:
    """Compare device classes (one representative each), not every worker.

    A cold key wins ties so new devices and models get measured (exploration).
    """
    best: Prediction | None = None
    for members in classes:
        worker = _free_member(task, members, taken)
        if worker is None:
            continue
        candidate = predict(task, worker, estimator, priors)
        if best is None or (candidate.total_s, not candidate.cold) < (best.total_s, not best.cold):
            best = candidate
    return best


def _free_member(
    task: TaskDemand, members: list[WorkerSlots], taken: Mapping[str, int]
) -> WorkerSlots | None:
    best: WorkerSlots | None = None
    best_free = 0
    for worker in members:
        free = worker.free_slots - taken.get(worker.worker_id, 0)
        if free > best_free and fits(task, worker):
            best, best_free = worker, free
    return best
