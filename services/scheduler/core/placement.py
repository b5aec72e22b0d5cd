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

from services.scheduler.core.fleet import Cursor, DeviceClass, Fleet
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
    # Bandwidth assumed for moving a missing input datablock to a worker.
    transfer_bytes_per_s: float = 200e6

    def seconds(self, kind: Kind, category: str) -> float:
        base = self.per_category.get(category)
        if base is not None:
            return base if kind is Kind.CPU else base / 2
        return self.cpu_seconds if kind is Kind.CPU else self.gpu_seconds


@dataclass(frozen=True)
class Prediction:
    """Predicted completion on a device class: wait + transfer + execution (seconds)."""

    wait_s: float
    transfer_s: float
    execution_s: float
    cold: bool
    total_s: float

    @staticmethod
    def of(wait_s: float, transfer_s: float, execution_s: float, cold: bool) -> Prediction:
        return Prediction(wait_s, transfer_s, execution_s, cold, wait_s + transfer_s + execution_s)


def fits(task: TaskDemand, worker: WorkerSlots) -> bool:
    """Eligibility of one worker: capable of the task and not draining."""
    return not worker.draining and capable(task, worker)


def capable(task: TaskDemand, worker: WorkerSlots) -> bool:
    """Static eligibility, shared by a whole device class: kind, category, precision, memory."""
    if worker.kind not in KINDS_FOR_GROUP[task.group]:
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


def transfer_seconds(task: TaskDemand, held: frozenset[str], priors: Priors) -> float:
    """Time to bring the inputs the worker does not hold."""
    missing = sum(size for block, size in task.inputs if block not in held)
    return missing / priors.transfer_bytes_per_s if missing else 0.0


def predict(
    task: TaskDemand,
    worker: WorkerSlots,
    estimator: Estimator,
    priors: Priors,
    held: frozenset[str] = frozenset(),
) -> Prediction:
    """Completion on a free slot of `worker`'s device, holding `held` of the inputs."""
    key = ProfileKey(
        worker.device_model, task.model, task.precision, batch_bucket(task.batch_size), task.category
    )
    found = estimator.estimate(key)
    cold = found is None or found.count == 0
    execution = priors.seconds(worker.kind, task.category) if found is None or cold else found.seconds
    transfer = transfer_seconds(task, held, priors) if task.inputs else 0.0
    return Prediction.of(wait_s=0.0, transfer_s=transfer, execution_s=execution, cold=cold)


def best_worker(
    task: TaskDemand,
    cursors: Iterable[tuple[DeviceClass, Cursor]],
    taken: Mapping[str, int],
    estimator: Estimator,
    priors: Priors,
    memo: dict[tuple[object, ...], Prediction | None] | None = None,
) -> tuple[WorkerSlots, Prediction] | None:
    """Compare device classes (their representative), not every worker; take a free member
    of the best class. A cold key wins ties so new devices and models get measured.

    `memo` caches, for one cycle, each class's prediction for tasks of the same shape."""
    best: tuple[WorkerSlots, Prediction] | None = None
    shape: tuple[object, ...] = (task.group, task.category, task.model, task.precision, task.batch_size)
    shape += (task.memory_bytes, task.gpu_memory_bytes, sum(size for _, size in task.inputs))
    for cls, cursor in cursors:
        key = (id(cls), *shape)
        if memo is not None and key in memo:
            candidate = memo[key]
        else:
            rep = cls.representative
            candidate = predict(task, rep, estimator, priors) if capable(task, rep) else None
            if memo is not None:
                memo[key] = candidate
        if candidate is None:
            continue
        worker = cursor.next_free(taken)
        if worker is None:
            continue
        if best is None or (candidate.total_s, not candidate.cold) < (best[1].total_s, not best[1].cold):
            best = (worker, candidate)
    return best


def best_holder(
    task: TaskDemand,
    fleet: Fleet,
    taken: Mapping[str, int],
    estimator: Estimator,
    priors: Priors,
) -> tuple[WorkerSlots, Prediction] | None:
    """Among free workers that already hold some of the task's inputs, the best one (S7):
    they save the transfer that a class representative is charged for."""
    best: tuple[WorkerSlots, Prediction] | None = None
    seen: set[str] = set()
    for block, _size in task.inputs:
        for worker_id in fleet.holders.get(block, ()):
            if worker_id in seen:
                continue
            seen.add(worker_id)
            worker = fleet.get(worker_id)
            if worker is None or worker.free_slots - taken.get(worker_id, 0) <= 0 or not fits(task, worker):
                continue
            candidate = predict(task, worker, estimator, priors, worker.cached)
            if best is None or candidate.total_s < best[1].total_s:
                best = (worker, candidate)
    return best


def fastest_completion(
    task: TaskDemand, fleet: Fleet, estimator: Estimator, priors: Priors, now: float
) -> float | None:
    """The earliest predicted completion on any eligible device class, busy or not
    (None when no eligible worker is alive): what admission checks a deadline against."""
    best: float | None = None
    for cls in fleet.classes.values():
        if capable(task, cls.representative) and any(not w.draining for w in cls):
            done = now + predict(task, cls.representative, estimator, priors).total_s
            best = done if best is None else min(best, done)
    return best
