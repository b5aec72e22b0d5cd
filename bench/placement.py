"""Placements per second of the pure core (DESIGN §9), beside a naive linear scan.

A prebuilt view (queued tasks across the three group queues, workers in device classes)
is handed to `plan_cycle`; the figure is placement decisions per second of wall time in
one cycle that fills every free slot, excluding I/O. The baseline takes the same tasks in
the same priority order but finds each one's worker by scanning every worker.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.report import REPORTS, header, pyplot, spread, write
from services.scheduler.core.clock import ManualClock
from services.scheduler.core.cycle import CycleLimits, SchedulerView, plan_cycle
from services.scheduler.core.fleet import Fleet
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
from services.scheduler.core.queues import Entry, GroupQueue

DEVICES = [
    (Kind.GPU, "NVIDIA H100"),
    (Kind.GPU, "NVIDIA A10"),
    (Kind.CPU, "Xeon 8480"),
    (Kind.CPU, "EPYC 9654"),
]
SLOTS = 4
NAIVE_DECISIONS = 300
WORKERS = (100, 1_000, 10_000)
QUEUED = (10_000, 100_000, 1_000_000)


class Table:
    def __init__(self) -> None:
        self.table: dict[ProfileKey, ProfileEstimate] = {}

    def estimate(self, key: ProfileKey) -> ProfileEstimate | None:
        return self.table.get(key)


def profiles() -> Table:
    table = Table()
    for kind, model in DEVICES:
        for name in ("mlp", "cnn"):
            for bucket in (1, 8, 32):
                speed = 0.05 if kind is Kind.GPU else 0.4
                table.table[ProfileKey(model, name, 1, bucket, "inference")] = ProfileEstimate(
                    speed * bucket, 10
                )
    return table


@dataclass
class Workload:
    tasks: dict[str, TaskDemand]
    queues: dict[Group, GroupQueue]
    order: list[str]


def build_workload(n_tasks: int, seed: int = 7) -> Workload:
    rng = random.Random(seed)
    groups = [Group.CPU_ONLY, Group.GPU_ONLY, Group.CPU_OR_GPU]
    tasks: dict[str, TaskDemand] = {}
    queues = {g: GroupQueue() for g in Group}
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
        queues[t.group].push(t.task_id, float(t.priority_class))
    order = [e.task_id for e in _merged(queues, NAIVE_DECISIONS * 4)]
    return Workload(tasks, queues, order)


def _merged(queues: dict[Group, GroupQueue], limit: int) -> list[Entry]:
    import heapq
    import itertools

    return list(itertools.islice(heapq.merge(*(q.ordered() for q in queues.values())), limit))


def build_fleet(n_workers: int) -> tuple[Fleet, list[WorkerSlots]]:
    fleet, workers = Fleet(), []
    for w in range(n_workers):
        kind, model = DEVICES[w % len(DEVICES)]
        worker = WorkerSlots(f"w{w}", kind, model, slots=SLOTS, free_slots=SLOTS)
        fleet.add(worker)
        workers.append(worker)
    return fleet, workers


def core_cycle(view: SchedulerView) -> int:
    return len(plan_cycle(view, ManualClock(), CycleLimits(max_placements=10**9)).placements)


def naive_cycle(work: Workload, workers: list[WorkerSlots], table: Table) -> int:
    """The same tasks in the same order; each decision scans every worker."""
    free = {w.worker_id: w.free_slots for w in workers}
    placed = 0
    for tid in work.order[:NAIVE_DECISIONS]:
        task = work.tasks[tid]
        best, best_s = None, 0.0
        for w in workers:
            if free[w.worker_id] > 0 and fits(task, w):
                seconds = predict(task, w, table, Priors()).total_s
                if best is None or seconds < best_s:
                    best, best_s = w, seconds
        if best is not None:
            free[best.worker_id] -= 1
            placed += 1
    return placed


def timed(fn: Callable[[], int], repeats: int) -> tuple[list[float], int]:
    rates, placed = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        placed = fn()
        rates.append(placed / (time.perf_counter() - started))
    return rates, placed


def run(repeats: int = 3) -> list[dict[str, float]]:
    rows: list[dict[str, float]] = []
    table = profiles()
    for n_tasks in QUEUED:
        work = build_workload(n_tasks)
        for n_workers in WORKERS:
            fleet, workers = build_fleet(n_workers)
            view = SchedulerView(work.queues, work.tasks.get, fleet, table, Priors())
            core, placed = timed(lambda view=view: core_cycle(view), repeats)  # type: ignore[misc]
            naive, _ = timed(lambda w=workers, k=work: naive_cycle(k, w, table), repeats)  # type: ignore[misc]
            rows.append(
                {
                    "queued": n_tasks,
                    "workers": n_workers,
                    "placed": placed,
                    "core_median": statistics.median(core),
                    "core_min": min(core),
                    "core_max": max(core),
                    "naive_median": statistics.median(naive),
                    "naive_min": min(naive),
                    "naive_max": max(naive),
                }
            )
            print(
                f"placement: {n_tasks:>9,} queued {n_workers:>6,} workers: {statistics.median(core):,.0f}/s"
            )
    return rows


def plot(rows: list[dict[str, float]]) -> str | None:
    plt = pyplot()
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for n_workers in WORKERS:
        mine = [r for r in rows if r["workers"] == n_workers]
        queued = [r["queued"] for r in mine]
        ax.plot(queued, [r["core_median"] for r in mine], marker="o", label=f"core, {n_workers:,} workers")
        ax.plot(
            queued,
            [r["naive_median"] for r in mine],
            ls="--",
            marker="x",
            label=f"scan, {n_workers:,} workers",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("queued tasks")
    ax.set_ylabel("placements / s (median)")
    ax.set_title("Placement decision cost: pure core vs naive worker scan")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    name = "placement.png"
    REPORTS.mkdir(exist_ok=True)
    fig.savefig(REPORTS / name, dpi=110)
    return name


def main() -> int:
    rows = run()
    lines = header(
        "Placement cycle: placements/s of the pure core vs a naive linear scan",
        "make bench BENCH=placement   (python -m bench.run placement)",
        [
            f"One cycle places queued tasks until every free slot ({SLOTS} per worker, 4 device models)",
            "is taken; the core walks the group queues best-first and compares device classes;",
            "the naive baseline takes the same tasks in the same order and scans every worker",
            f"(first {NAIVE_DECISIONS} decisions). Wall time of the decisions only, no I/O (DESIGN §9);",
            "median of 3 runs with min-max.",
        ],
    )
    lines += [
        "| queued | workers | placed | core placements/s | naive scan placements/s | ratio |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = r["core_median"] / r["naive_median"]
        lines.append(
            f"| {r['queued']:,.0f} | {r['workers']:,.0f} | {r['placed']:,.0f} "
            f"| {spread([r['core_min'], r['core_median'], r['core_max']])} "
            f"| {spread([r['naive_min'], r['naive_median'], r['naive_max']])} | {ratio:,.0f}x |"
        )
    image = plot(rows)
    if image:
        lines += ["", f"![placements per second]({image})"]
    path = write("placement", lines, rows)
    print("\n".join(lines))
    print(f"report: {path}")
    return 0
