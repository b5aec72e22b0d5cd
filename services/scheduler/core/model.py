"""Domain types the policy reads and returns (frozen where the policy only reads them)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Group(enum.IntEnum):
    """Eligibility groups; values match the proto enum `Eligibility`."""

    CPU_ONLY = 1
    GPU_ONLY = 2
    CPU_OR_GPU = 3


class Kind(enum.IntEnum):
    """Worker kinds; values match the proto enum `WorkerKind`."""

    CPU = 1
    GPU = 2


class QosClass(enum.IntEnum):
    UNSPECIFIED = 0
    LATENCY_CRITICAL = 1
    STANDARD = 2
    BATCH = 3


KINDS_FOR_GROUP: dict[Group, frozenset[Kind]] = {
    Group.CPU_ONLY: frozenset({Kind.CPU}),
    Group.GPU_ONLY: frozenset({Kind.GPU}),
    Group.CPU_OR_GPU: frozenset({Kind.CPU, Kind.GPU}),
}


@dataclass(frozen=True)
class TaskDemand:
    """What the policy needs to know about a queued task."""

    task_id: str
    tenant: str
    category: str
    group: Group
    priority_class: int
    qos_class: QosClass
    model: str
    precision: int
    batch_size: int
    enqueued_at: float
    deadline: float | None = None
    memory_bytes: int = 0
    gpu_memory_bytes: int = 0
    # DeadlineMissPolicy EXPIRE: drop at admission when no worker can meet the deadline.
    expire_on_miss: bool = False
    # Input datablocks as (id, size in bytes): placement prefers workers that hold them (S7).
    inputs: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class ProfileKey:
    device_model: str
    model: str
    precision: int
    batch_bucket: int
    category: str


@dataclass(frozen=True)
class ProfileEstimate:
    """Execution-time estimate for a key (seconds) and how many samples back it."""

    seconds: float
    count: int


@dataclass
class WorkerSlots:
    """A live worker as the policy sees it; the service updates it in place."""

    worker_id: str
    kind: Kind
    device_model: str
    slots: int
    free_slots: int
    memory_bytes: int = 0
    gpu_memory_bytes: int = 0
    precisions: frozenset[int] = frozenset()
    categories: frozenset[str] = frozenset()
    draining: bool = False
    last_heartbeat: float = 0.0
    running: set[str] = field(default_factory=set)
    # Datablock ids the worker holds in its local cache (from registration and heartbeats).
    cached: frozenset[str] = frozenset()

    @property
    def device_class(self) -> tuple[Kind, str]:
        return (self.kind, self.device_model)


@dataclass(frozen=True)
class Placement:
    task_id: str
    worker_id: str
    predicted_seconds: float
    predicted_completion: float
    misses_deadline: bool = False


@dataclass(frozen=True)
class Expiry:
    task_id: str
    reason: str


@dataclass(frozen=True)
class CycleDecisions:
    placements: list[Placement]
    expiries: list[Expiry]
