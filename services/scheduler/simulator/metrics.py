"""Figures of a run: completion time, queueing delay, SLO attainment, per-tenant device time
and Jain's index over backlogged tenants, utilisation per device model, makespan."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from services.scheduler.core.model import KINDS_FOR_GROUP, Group, Kind
from services.scheduler.simulator.model import Scenario
from services.scheduler.simulator.records import Records

WAIT_ON, RUN_ON, WAIT_OFF, RUN_OFF = 0, 1, 2, 3


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]) of unsorted values; nan when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(math.ceil(q / 100 * len(ordered)), 1)
    return ordered[rank - 1]


def jain(values: Sequence[float]) -> float:
    """Jain's fairness index (Σx)² / (n·Σx²): 1 when all equal, 1/n when one takes all."""
    square = sum(v * v for v in values)
    return (sum(values) ** 2) / (len(values) * square) if square > 0 else 1.0


@dataclass
class Figures:
    policy: str
    completed: int
    expired: int
    unfinished: int
    jct_mean: float
    jct_p95: float
    jct_p99: float
    wait_mean: float
    wait_p95: float
    wait_p99: float
    slo_tasks: int
    slo_attainment: float
    makespan: float
    utilisation: dict[str, float]
    device_time: dict[str, float]
    jain_mean: float
    jain_windows: int
    wall_s: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)


def figures(
    policy: str,
    records: Records,
    scenario: Scenario,
    *,
    jain_window_s: float | None = None,
    shares: Mapping[str, float] | None = None,
) -> Figures:
    done = [i for i in range(len(records)) if records.device[i] >= 0]
    jct = [records.end[i] - records.arrival[i] for i in done]
    wait = [records.start[i] - records.ready[i] for i in done]
    slo = [i for i in range(len(records)) if not math.isnan(records.deadline[i])]
    met = sum(1 for i in slo if records.device[i] >= 0 and records.end[i] <= records.deadline[i])
    first = min(records.arrival, default=0.0)
    makespan = max(records.end, default=0.0) - first
    busy: dict[str, float] = {}
    per_tenant: dict[str, float] = {}
    for i in done:
        seconds = records.end[i] - records.start[i]
        device = records.devices[records.device[i]]
        busy[device] = busy.get(device, 0.0) + seconds
        tenant = records.tenants[records.tenant[i]]
        per_tenant[tenant] = per_tenant.get(tenant, 0.0) + seconds
    slots: dict[str, int] = {}
    for w in scenario.cluster.workers:
        slots[w.device_model] = slots.get(w.device_model, 0) + w.slots
    util = {d: busy.get(d, 0.0) / (n * makespan) if makespan > 0 else 0.0 for d, n in sorted(slots.items())}
    jain_mean, windows = (math.nan, 0)
    if jain_window_s:
        jain_mean, windows = backlogged_jain(records, jain_window_s, shares or scenario.workload.shares)
    return Figures(
        policy=policy,
        completed=len(done),
        expired=len(records) - len(done),
        unfinished=records.unfinished,
        jct_mean=sum(jct) / len(jct) if jct else math.nan,
        jct_p95=percentile(jct, 95),
        jct_p99=percentile(jct, 99),
        wait_mean=sum(wait) / len(wait) if wait else math.nan,
        wait_p95=percentile(wait, 95),
        wait_p99=percentile(wait, 99),
        slo_tasks=len(slo),
        slo_attainment=met / len(slo) if slo else math.nan,
        makespan=makespan,
        utilisation=util,
        device_time=per_tenant,
        jain_mean=jain_mean,
        jain_windows=windows,
    )


def backlogged_jain(records: Records, window_s: float, shares: Mapping[str, float]) -> tuple[float, int]:
    """Mean Jain's index, over windows of `window_s`, of device time per share among the
    tenants backlogged (a task of theirs queued) throughout the window. Windows start at the
    first event; those with fewer than two such tenants are left out, and so is the last,
    unfinished one. Returns (mean index, windows counted)."""
    events: list[tuple[float, int, int]] = []
    for i in range(len(records)):
        t = records.tenant[i]
        events.append((records.ready[i], WAIT_ON, t))
        events.append((records.start[i], WAIT_OFF, t))
        if records.device[i] >= 0:
            events.append((records.start[i], RUN_ON, t))
            events.append((records.end[i], RUN_OFF, t))
    if not events:
        return math.nan, 0
    events.sort()
    n = len(records.tenants)
    waiting, running = [0] * n, [0] * n
    since: list[float] = [math.inf] * n
    served, last = [0.0] * n, [0.0] * n
    window_start = events[0][0]
    boundary = window_start + window_s
    # Device time each tenant had been served when the window opened.
    at_start = [0.0] * n
    indexes: list[float] = []

    def flush(t: int, now: float) -> None:
        served[t] += running[t] * (now - last[t])
        last[t] = now

    for when, kind, t in events:
        while when >= boundary:
            for tenant in range(n):
                flush(tenant, boundary)
            xs = [
                (served[k] - at_start[k]) / shares.get(records.tenants[k], 1.0)
                for k in range(n)
                if waiting[k] > 0 and since[k] <= window_start
            ]
            if len(xs) >= 2:
                indexes.append(jain(xs))
            at_start = served.copy()
            window_start, boundary = boundary, boundary + window_s
        flush(t, when)
        if kind == WAIT_ON:
            waiting[t] += 1
            if waiting[t] == 1:
                since[t] = when
        elif kind == WAIT_OFF:
            waiting[t] -= 1
            if waiting[t] == 0:
                since[t] = math.inf
        elif kind == RUN_ON:
            running[t] += 1
        else:
            running[t] -= 1
    return (sum(indexes) / len(indexes) if indexes else math.nan), len(indexes)


@dataclass(frozen=True)
class Bound:
    """Offline lower bounds: no queueing, every task on its fastest eligible device."""

    jct_mean: float
    makespan: float


def offline_bound(scenario: Scenario) -> Bound:
    """Mean JCT if every task ran at once on its fastest eligible device; makespan at least
    the longest such task and the work of each group over the capacity that may run it
    (each worker counted at its best speed over the workload's categories)."""
    speeds = scenario.speeds
    categories = {c for (_, _, _, c) in scenario.workload.mean_work} or {""}
    best: dict[tuple[Kind, str], float] = {}
    capacity = dict.fromkeys(Kind, 0.0)
    for w in scenario.cluster.workers:
        top = 0.0
        for category in categories:
            s = speeds.speed(w.device_model, category)
            best[(w.kind, category)] = max(best.get((w.kind, category), 0.0), s)
            top = max(top, s)
        capacity[w.kind] += w.slots * top
    total_jct, count, first, last_done = 0.0, 0, math.inf, 0.0
    work = dict.fromkeys(Group, 0.0)
    for a in scenario.workload:
        d = a.demand
        fastest = max((best.get((k, d.category), 0.0) for k in KINDS_FOR_GROUP[d.group]), default=0.0)
        if fastest <= 0:
            continue
        total_jct += a.work / fastest
        count += 1
        first = min(first, a.at)
        last_done = max(last_done, a.at + a.work / fastest)
        work[d.group] += a.work
    if count == 0:
        return Bound(math.nan, math.nan)
    cpu, gpu = capacity[Kind.CPU], capacity[Kind.GPU]
    spans = [sum(work.values()) / (cpu + gpu) if cpu + gpu > 0 else 0.0]
    spans += [work[Group.CPU_ONLY] / cpu if cpu > 0 else 0.0, work[Group.GPU_ONLY] / gpu if gpu > 0 else 0.0]
    return Bound(total_jct / count, max(last_done - first, *spans))
