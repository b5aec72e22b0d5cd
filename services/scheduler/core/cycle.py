"""One placement cycle: walk the group queues best-first and place what fits.

The service calls `plan_cycle` with a read-only view; it returns decisions and changes
nothing. Numbered steps, as the service's loop: (1) merge the heads of the group queues by
priority, (2) expire tasks whose deadline passed before they started, (3) place each task
on the worker with the earliest predicted completion, unless its tenant is at its running
quota, (4) stop when no slot is free.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from services.scheduler.core.clock import Clock
from services.scheduler.core.fleet import Cursor, Fleet
from services.scheduler.core.model import (
    CycleDecisions,
    Expiry,
    Group,
    Placement,
    TaskDemand,
)
from services.scheduler.core.placement import Estimator, Prediction, Priors, best_holder, best_worker
from services.scheduler.core.queues import GroupQueue


@dataclass(frozen=True)
class CycleLimits:
    max_placements: int = 1000
    # How many unplaceable tasks a cycle looks past before it stops.
    max_skips: int = 256


@dataclass(frozen=True)
class SchedulerView:
    """What the policy reads; the service owns and updates every part of it."""

    queues: Mapping[Group, GroupQueue]
    task: Callable[[str], TaskDemand | None]
    fleet: Fleet
    estimator: Estimator
    priors: Priors
    # How many more tasks a tenant may start now (its running quota); None means no limit.
    tenant_room: Callable[[str], int | None] = lambda _tenant: None


def plan_cycle(view: SchedulerView, clock: Clock, limits: CycleLimits | None = None) -> CycleDecisions:
    limits = limits or CycleLimits()
    now = clock.now()
    free_total = view.fleet.free_slots
    cursors = [(cls, Cursor(cls)) for cls in view.fleet.classes.values()]
    memo: dict[tuple[object, ...], Prediction | None] = {}
    taken: dict[str, int] = {}
    placements: list[Placement] = []
    expiries: list[Expiry] = []
    skips = 0
    started: dict[str, int] = {}
    # (1) one ordered stream over all groups
    merged = heapq.merge(*(q.ordered() for q in view.queues.values()))
    for entry in merged:
        if len(placements) >= min(limits.max_placements, free_total) or skips > limits.max_skips:
            break
        task = view.task(entry.task_id)
        if task is None:
            continue
        # (2) a deadline that passed before the task started expires it
        if task.deadline is not None and task.deadline < now:
            expiries.append(Expiry(task.task_id, "deadline passed before the task started"))
            continue
        room = view.tenant_room(task.tenant)
        if room is not None and started.get(task.tenant, 0) >= room:
            skips += 1
            continue
        # (3) earliest predicted completion among eligible workers with a free slot
        found = best_worker(task, cursors, taken, view.estimator, view.priors, memo)
        if task.inputs:
            local = best_holder(task, view.fleet, taken, view.estimator, view.priors)
            if local is not None and (found is None or local[1].total_s <= found[1].total_s):
                found = local
        if found is None:
            skips += 1
            continue
        worker, best = found
        completion = now + best.total_s
        placements.append(
            Placement(
                task.task_id,
                worker.worker_id,
                predicted_seconds=best.total_s,
                predicted_completion=completion,
                misses_deadline=task.deadline is not None and completion > task.deadline,
            )
        )
        taken[worker.worker_id] = taken.get(worker.worker_id, 0) + 1
        started[task.tenant] = started.get(task.tenant, 0) + 1
    return CycleDecisions(placements, expiries)
