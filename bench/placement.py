"""Placements per second of the pure core (DESIGN §9), beside a naive linear scan.

A prebuilt view (queued tasks across the three group queues, workers in device classes)
is handed to `plan_cycle`; the figure is placement decisions per second of wall time,
excluding I/O. The baseline places the same tasks by scanning every queued task for the
best priority and every worker for the best predicted completion, per decision.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from services.scheduler.core.clock import ManualClock
from services.scheduler.core.cycle import CycleLimits, SchedulerView, plan_cycle
from services.scheduler.core.model import (
    Group,
    Kind,
    ProfileEstimate,
    ProfileKey,
    QosClass,
    TaskDemand,
    WorkerSlots,
)
from services.scheduler.core.placement import Priors, fits, predict
from services.scheduler.core.queues import GroupQueue

T = TypeVar("T")
DEVICES = [
    (Kind.GPU, "NVIDIA H100"),
    (Kind.GPU, "NVIDIA A10"),
    (Kind.CPU, "Xeon 8480"),
    (Kind.CPU, "EPYC 9654"),
]


class Table:
    def __init__(self) -> None:
        self.table: dict[ProfileKey, ProfileEstimate] = {}

    def estimate(self, key: ProfileKey) -> ProfileEstimate | None:
        return self.table.get(key)


@dataclass
class Scenario:
    tasks: dict[str, TaskDemand]
    priorities: dict[str, float]
    workers: list[WorkerSlots]
    profiles: Table


def build(n_tasks: int, n_workers: int, seed: int = 7) -> Scenario:
    rng = random.Random(seed)
    groups = [Group.CPU_ONLY, Group.GPU_ONLY, Group.CPU_OR_GPU]
    tasks = {}
    for i in range(n_tasks):
        t = TaskDemand(
            task_id=f"t{i}",
            tenant=f"tenant{i % 50}",
            category="inference",
            group=rng.choice(groups),
            priority_class=rng.randint(0, 100),
            qos_class=QosClass.STANDARD,
            model=rng.choice(["mlp", "cnn"]),
            precision=1,
            batch_size=rng.choice([1, 8, 32]),
            enqueued_at=0.0,
        )
        tasks[t.task_id] = t
    workers = []
    for w in range(n_workers):
        kind, model = DEVICES[w % len(DEVICES)]
        workers.append(WorkerSlots(f"w{w}", kind, model, slots=4, free_slots=4))
    profiles = Table()
    for kind, model in DEVICES:
        for name in ("mlp", "cnn"):
            for bucket in (1, 8, 32):
                speed = 0.05 if kind is Kind.GPU else 0.4
                profiles.table[ProfileKey(model, name, 1, bucket, "inference")] = ProfileEstimate(
                    speed * bucket, 10
                )
    return Scenario(tasks, {tid: float(t.priority_class) for tid, t in tasks.items()}, workers, profiles)


def core_view(s: Scenario) -> SchedulerView:
    """The indexed state the service keeps up to date incrementally (built once, untimed)."""
    queues = {g: GroupQueue() for g in Group}
    for tid, t in s.tasks.items():
        queues[t.group].push(tid, s.priorities[tid])
    classes: dict[tuple[int, str], list[WorkerSlots]] = {}
    for w in s.workers:
        classes.setdefault((int(w.kind), w.device_model), []).append(w)
    return SchedulerView(queues, s.tasks.get, classes, s.profiles, Priors())


def core_cycle(view: SchedulerView) -> int:
    return len(plan_cycle(view, ManualClock(), CycleLimits(max_placements=10**9)).placements)


def naive_cycle(s: Scenario) -> int:
    waiting = dict(s.priorities)
    free = {w.worker_id: w.free_slots for w in s.workers}
    placed = 0
    while waiting and any(free.values()):
        tid = max(waiting, key=lambda k: (waiting[k], -int(k[1:])))
        del waiting[tid]
        task = s.tasks[tid]
        best, best_s = None, 0.0
        for w in s.workers:
            if free[w.worker_id] > 0 and fits(task, w):
                seconds = predict(task, w, s.profiles, Priors()).total_s
                if best is None or seconds < best_s:
                    best, best_s = w, seconds
        if best is not None:
            free[best.worker_id] -= 1
            placed += 1
    return placed


def measure(fn: Callable[[T], int], scenario: T, repeats: int) -> tuple[list[float], int]:
    rates, placed = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        placed = fn(scenario)
        rates.append(placed / (time.perf_counter() - started))
    return rates, placed


def run(repeats: int = 5) -> list[dict[str, float]]:
    rows: list[dict[str, float]] = []
    for n_tasks, n_workers in [(5_000, 50), (20_000, 100), (50_000, 100)]:
        scenario = build(n_tasks, n_workers)
        core, placed = measure(core_cycle, core_view(scenario), repeats)
        naive, naive_placed = measure(naive_cycle, scenario, 3)
        rows.append(
            {
                "queued": n_tasks,
                "workers": n_workers,
                "slots": n_workers * 4,
                "placed": placed,
                "core_median": statistics.median(core),
                "core_min": min(core),
                "core_max": max(core),
                "naive_median": statistics.median(naive),
                "naive_min": min(naive),
                "naive_max": max(naive),
                "naive_placed": naive_placed,
            }
        )
    return rows
