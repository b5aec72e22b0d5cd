"""The scheduler's own record of a task (mutable: the scheduler is its only writer)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from services.scheduler.core.model import TaskDemand


class TaskState(enum.IntEnum):
    """Values match the proto enum `TaskState`."""

    PENDING = 1
    QUEUED = 2
    ASSIGNED = 3
    RUNNING = 4
    SUCCEEDED = 5
    FAILED = 6
    CANCELLED = 7
    EXPIRED = 8

    @property
    def terminal(self) -> bool:
        return self >= TaskState.SUCCEEDED


@dataclass(slots=True, eq=False)
class TaskRecord:
    id: str
    job_id: str
    tenant: str
    user: str
    category: str
    eligibility: int
    priority_class: int
    rule: str
    state: TaskState
    spec: bytes
    demand: TaskDemand
    submitted_at: float
    depends_on: tuple[str, ...] = ()
    idempotency_key: str | None = None
    attempt: int = 0
    worker_id: str | None = None
    queued_at: float | None = None
    assigned_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    result: bytes | None = None
    error_reason: str | None = None
    error_message: str | None = None
    token: str = ""
    flags: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class JobRecord:
    id: str
    tenant: str
    created_at: float
