"""Domain types of the classifier: categories, classifications and the tenant registry.

Protos stay at the edge (`convert.py`); everything inside speaks these frozen dataclasses.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class Eligibility(enum.Enum):
    """Which processors may run a task (seed S1, claim 9)."""

    CPU_ONLY = "CPU_ONLY"
    GPU_ONLY = "GPU_ONLY"
    CPU_OR_GPU = "CPU_OR_GPU"


class Precision(enum.IntEnum):
    """Numeric precision, valued like `switchyard.v1.Precision`."""

    UNSPECIFIED = 0
    FP32 = 1
    BF16 = 2
    FP16 = 3
    INT8 = 4


class CategoryProfile(enum.Enum):
    DEFAULT = "default"
    LOCAL = "local"


@dataclass(frozen=True)
class Category:
    name: str
    eligibility: Eligibility
    priority_class: int
    # The rule that fixed `eligibility`: "category:<name>" or "profile:local".
    rule: str = ""

    @property
    def decided_by(self) -> str:
        return self.rule or f"category:{self.name}"


@dataclass(frozen=True)
class SpecTraits:
    """What classification needs to know about one task spec."""

    category: str
    precision: Precision = Precision.UNSPECIFIED
    gpu_count: float = 0.0
    gpu_memory_bytes: int = 0


@dataclass(frozen=True)
class Classification:
    category: str
    eligibility: Eligibility
    priority_class: int
    rule: str


@dataclass(frozen=True)
class Conflict:
    """A spec that contradicts its category; `field` is relative to the spec."""

    field: str
    description: str


@dataclass(frozen=True)
class TenantQuotas:
    """Limits the scheduler enforces per tenant; 0 means unlimited."""

    max_queued_tasks: int = 0
    max_running_tasks: int = 0
    submit_rate_per_second: float = 0.0
    submit_burst: int = 0


UNLIMITED = TenantQuotas()


@dataclass(frozen=True)
class Tenant:
    name: str
    share: float
    created_at: datetime
    quotas: TenantQuotas = UNLIMITED


@dataclass(frozen=True)
class User:
    tenant: str
    name: str


@dataclass(frozen=True)
class IssuedToken:
    """A freshly issued bearer token: the only moment the plain token exists."""

    token: str
    tenant: str
    user: str
    created_at: datetime
