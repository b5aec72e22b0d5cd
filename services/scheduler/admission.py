"""Admission checks of new tasks: idempotency keys seen before, dependencies that exist and
belong to the tenant, and deadlines no live worker can meet (EXPIRE on a miss)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from common.errors import Violations
from services.scheduler.core.fleet import Fleet
from services.scheduler.core.model import TaskDemand
from services.scheduler.core.placement import Estimator, Priors, fastest_completion
from services.scheduler.model import TaskRecord
from services.scheduler.store import TaskStore


async def idempotent_hits(
    store: TaskStore, live: Mapping[str, TaskRecord], records: Sequence[TaskRecord]
) -> dict[tuple[str, str], TaskRecord]:
    """(tenant, idempotency key) → the task stored with it before (its live record if any)."""
    hits: dict[tuple[str, str], TaskRecord] = {}
    by_tenant: dict[str, list[str]] = {}
    for r in records:
        if r.idempotency_key:
            by_tenant.setdefault(r.tenant, []).append(r.idempotency_key)
    for tenant, keys in by_tenant.items():
        for found in await store.find_idempotent(tenant, keys):
            hits[(tenant, found.idempotency_key or "")] = live.get(found.id, found)
    return hits


async def check_dependencies(
    store: TaskStore, live: Mapping[str, TaskRecord], records: Sequence[TaskRecord]
) -> None:
    """Every `depends_on` names a task of the same tenant (in this batch, live or stored)."""
    batch = {r.id for r in records}
    wanted = {d for r in records for d in r.depends_on if d not in batch and d not in live}
    found = {t.id: t for t in await store.get(sorted(wanted))}
    problems = Violations()
    for i, r in enumerate(records):
        for d in r.depends_on:
            owner = live.get(d) or found.get(d)
            if d not in batch and (owner is None or owner.tenant != r.tenant):
                problems.add(f"tasks[{i}].spec.depends_on", f"unknown task {d!r}")
    problems.raise_if_any()


def unreachable_deadline(
    task: TaskDemand, fleet: Fleet, estimator: Estimator, priors: Priors, now: float
) -> str | None:
    """Why an EXPIRE-on-miss task cannot meet its deadline on any live worker, if so."""
    if not task.expire_on_miss or task.deadline is None:
        return None
    best = fastest_completion(task, fleet, estimator, priors, now)
    if best is None:
        return "no eligible worker is alive to meet the deadline"
    if best > task.deadline:
        return f"the fastest eligible device needs until {best - task.deadline:.3f}s past the deadline"
    return None
