"""Synthetic workloads: the scale fleet (100,000 workers, 1,000,000 tasks) and the batch
background mixed into the Azure-LLM scenario. Seeded, generated lazily in time order."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator

from services.scheduler.core.model import Group, Kind, QosClass, TaskDemand, WorkerSlots
from services.scheduler.simulator.model import PRIORITY_CLASS, Arrival, SpeedTable

# (device model, kind, slots, fraction of the fleet)
FLEET = [
    ("Xeon", Kind.CPU, 4, 0.40),
    ("EPYC", Kind.CPU, 4, 0.20),
    ("T4", Kind.GPU, 2, 0.15),
    ("A10", Kind.GPU, 2, 0.10),
    ("A100", Kind.GPU, 2, 0.10),
    ("H100", Kind.GPU, 2, 0.05),
]
SPEEDS = SpeedTable(
    devices={"Xeon": 1.0, "EPYC": 1.3, "T4": 0.25, "A10": 0.45, "A100": 1.0, "H100": 2.0},
    # CPU_OR_GPU categories: reference work is on an A100; a CPU does inference 10x slower.
    per_category={("Xeon", "inference"): 0.1, ("EPYC", "inference"): 0.13},
)
# (category, group, model, batch size, mean reference work s, QoS, weight in the mix)
MIX = [
    ("ingest_source_assets", Group.CPU_ONLY, "ingest", 1, 4.0, QosClass.BATCH, 0.25),
    ("create_synthetic_data", Group.GPU_ONLY, "render", 8, 6.0, QosClass.STANDARD, 0.25),
    ("inference", Group.CPU_OR_GPU, "mlp", 16, 0.5, QosClass.LATENCY_CRITICAL, 0.30),
    ("training_step", Group.GPU_ONLY, "cnn", 32, 10.0, QosClass.BATCH, 0.20),
]
SIGMA = 0.5


def fleet(workers: int) -> list[WorkerSlots]:
    out = []
    for model, kind, slots, fraction in FLEET:
        for i in range(round(workers * fraction)):
            out.append(WorkerSlots(f"{model.lower()}-{i}", kind, model, slots, slots))
    return out


def mean_work() -> dict[tuple[str, int, int, str], float]:
    from services.scheduler.core.placement import batch_bucket

    return {(m, 0, batch_bucket(b), c): w for c, _, m, b, w, _, _ in MIX}


def tasks(count: int, rate_per_s: float, tenants: int = 1000, seed: int = 0) -> Iterator[Arrival]:
    """Poisson arrivals; tenants Zipf-weighted; work lognormal around the mix's mean."""
    rng = random.Random(seed)
    cum = list(itertools.accumulate(1.0 / (k + 1) for k in range(tenants)))
    names = [f"tenant-{k}" for k in range(tenants)]
    kinds = list(itertools.accumulate(m[-1] for m in MIX))
    t = 0.0
    for n in range(count):
        t += rng.expovariate(rate_per_s)
        category, group, model, batch, work, qos, _ = rng.choices(MIX, cum_weights=kinds)[0]
        demand = TaskDemand(
            task_id=f"t{n}",
            tenant=rng.choices(names, cum_weights=cum)[0],
            category=category,
            group=group,
            priority_class=PRIORITY_CLASS[category],
            qos_class=qos,
            model=model,
            precision=0,
            batch_size=batch,
            enqueued_at=t,
        )
        yield Arrival(demand, work * rng.lognormvariate(-SIGMA * SIGMA / 2, SIGMA))


def batch_jobs(
    until_s: float,
    rate_work_per_s: float,
    *,
    tasks_per_job: int = 64,
    mean_work_s: float = 20.0,
    seed: int = 0,
) -> list[Arrival]:
    """Background BATCH training_step jobs for the LLM scenario: jobs of `tasks_per_job`
    GPU tasks submitted at once (a split request), Poisson job arrivals sized so that the
    background offers `rate_work_per_s` reference-seconds of work per second."""
    rng = random.Random(seed)
    job_rate = rate_work_per_s / (tasks_per_job * mean_work_s)
    out: list[Arrival] = []
    t, job = 0.0, 0
    tenants = ["batch-a", "batch-b", "batch-c"]
    while True:
        t += rng.expovariate(job_rate) if job_rate > 0 else math.inf
        if t >= until_s:
            return out
        tenant = tenants[job % len(tenants)]
        for i in range(tasks_per_job):
            demand = TaskDemand(
                task_id=f"job{job}-{i}",
                tenant=tenant,
                category="training_step",
                group=Group.GPU_ONLY,
                priority_class=PRIORITY_CLASS["training_step"],
                qos_class=QosClass.BATCH,
                model="cnn",
                precision=0,
                batch_size=32,
                enqueued_at=t,
            )
            out.append(Arrival(demand, mean_work_s * rng.lognormvariate(-0.125, 0.5)))
        job += 1
