"""Validators for what reaches the scheduler; every problem is collected, then raised once."""

from __future__ import annotations

from collections.abc import Sequence

from common.errors import Violations
from switchyard.v1 import scheduler_pb2, types_pb2

MAX_IDS = 10_000
MAX_ID_LENGTH = 128


def validate_ids(tenant: str, ids: Sequence[str], field: str, *, allow_empty: bool = False) -> None:
    problems = Violations()
    if not tenant:
        problems.add("tenant", "must be set")
    if not ids and not allow_empty:
        problems.add(field, "must name at least one id")
    if len(ids) > MAX_IDS:
        problems.add(field, f"at most {MAX_IDS} ids per call")
    for i, value in enumerate(ids):
        if not value or len(value) > MAX_ID_LENGTH:
            problems.add(f"{field}[{i}]", f"must be 1..{MAX_ID_LENGTH} characters")
    problems.raise_if_any()


def validate_enqueue(request: scheduler_pb2.EnqueueTasksRequest) -> None:
    problems = Violations()
    if not request.tasks:
        problems.add("tasks", "must hold at least one task")
    seen: set[str] = set()
    for i, task in enumerate(request.tasks):
        _check_task(problems, f"tasks[{i}]", task, seen)
    problems.raise_if_any()


def _check_task(problems: Violations, path: str, task: types_pb2.Task, seen: set[str]) -> None:
    for name in ("id", "job_id", "tenant", "user", "category"):
        value = getattr(task, name)
        if not value or len(value) > MAX_ID_LENGTH:
            problems.add(f"{path}.{name}", f"must be 1..{MAX_ID_LENGTH} characters")
    if task.id in seen:
        problems.add(f"{path}.id", "duplicate id in this request")
    seen.add(task.id)
    if task.eligibility not in (
        types_pb2.ELIGIBILITY_CPU_ONLY,
        types_pb2.ELIGIBILITY_GPU_ONLY,
        types_pb2.ELIGIBILITY_CPU_OR_GPU,
    ):
        problems.add(f"{path}.eligibility", "must be CPU_ONLY, GPU_ONLY or CPU_OR_GPU")
    if task.id in task.spec.depends_on:
        problems.add(f"{path}.spec.depends_on", "a task cannot depend on itself")
