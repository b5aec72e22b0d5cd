"""Domain types of the profile store: frozen dataclasses, no protobuf, no database."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from services.profile_store.stats import batch_bucket


class Precision(enum.StrEnum):
    UNSPECIFIED = ""
    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"
    INT8 = "int8"


class Outcome(enum.StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"


@dataclass(frozen=True, kw_only=True)
class ModelRef:
    name: str = ""
    version: str = ""


@dataclass(frozen=True, kw_only=True)
class ProfileKey:
    """What a profile describes: one device model running one model at one precision,
    batch-size bucket and category (DESIGN §3)."""

    device_model: str
    model: ModelRef = field(default_factory=ModelRef)
    precision: Precision = Precision.UNSPECIFIED
    batch_bucket: int = 1
    category: str

    @property
    def id(self) -> str:
        """A stable, totally ordered text id (the primary key and the page-token cursor)."""
        parts = (
            self.device_model,
            self.model.name,
            self.model.version,
            self.precision.value,
            f"{self.batch_bucket:010d}",
            self.category,
        )
        return "\x1f".join(parts)


@dataclass(frozen=True, kw_only=True)
class Metric:
    """One task attempt's result metrics as a worker reported them."""

    task_id: str
    attempt: int
    assignment_token: str = ""
    worker_id: str
    device_model: str
    model: ModelRef = field(default_factory=ModelRef)
    precision: Precision = Precision.UNSPECIFIED
    batch_size: int = 0
    category: str
    tenant: str
    queue_wait_s: float | None = None
    execution_time_s: float | None = None
    items_per_second: float = 0.0
    gpu_utilization: float = 0.0
    cpu_utilization: float = 0.0
    memory_bytes: int = 0
    gpu_power_watts: float = 0.0
    outcome: Outcome
    finished_at: datetime | None = None

    @classmethod
    def from_fields(cls, values: Sequence[Any]) -> Metric:
        """The metric whose fields, in declaration order, are `values`: equal to
        `Metric(**dict(zip(field names, values)))` and as frozen, built without the frozen
        `__init__`'s cost per field (ingest builds thousands of metrics per request)."""
        metric = object.__new__(cls)
        metric.__dict__.update(zip(_METRIC_FIELDS, values, strict=True))
        return metric

    @property
    def profile_key(self) -> ProfileKey:
        return ProfileKey(
            device_model=self.device_model,
            model=self.model,
            precision=self.precision,
            batch_bucket=batch_bucket(self.batch_size),
            category=self.category,
        )

    @property
    def throughput(self) -> float:
        """Items per second: as reported, else derived from batch size and execution time."""
        if self.items_per_second > 0:
            return self.items_per_second
        if self.execution_time_s and self.execution_time_s > 0:
            return max(self.batch_size, 1) / self.execution_time_s
        return 0.0

    @property
    def worker_kind(self) -> str:
        """Metrics carry no worker kind; GPU telemetry (a GPU never reads 0 W) tells it."""
        return "gpu" if self.gpu_power_watts > 0 or self.gpu_utilization > 0 else "cpu"


_METRIC_FIELDS = tuple(f.name for f in fields(Metric))


@dataclass(frozen=True, kw_only=True)
class Profile:
    key: ProfileKey
    count: int
    mean_seconds: float
    ewma_seconds: float
    variance: float
    p50_seconds: float
    p95_seconds: float
    p99_seconds: float
    items_per_second: float
    updated_at: datetime


@dataclass(frozen=True, kw_only=True)
class WorkerProfile:
    """The same figures for one worker, to spot outliers among workers of a device model."""

    worker_id: str
    profile: Profile


@dataclass(frozen=True, kw_only=True)
class TenantScore:
    tenant: str
    share: float
    decayed_usage: float
    usage_score: float
    fair_share_factor: float


@dataclass(frozen=True, kw_only=True)
class Resource:
    worker_id: str
    device_model: str
    kind: str
    last_seen: datetime


@dataclass(frozen=True, kw_only=True)
class ProfileFilter:
    model_name: str = ""
    device_model: str = ""
    precision: Precision = Precision.UNSPECIFIED


@dataclass(frozen=True, kw_only=True)
class ProfilePage:
    profiles: Sequence[Profile]
    # Id of the last profile of this page when more may follow, else "".
    next_after: str = ""


@dataclass(frozen=True, kw_only=True)
class IngestResult:
    """What one ingested batch did: `duplicates[i]` is True when metric i was stored before;
    `profiles` are the profiles it changed; `scores` every tenant's score when usage changed."""

    duplicates: Sequence[bool]
    profiles: Sequence[Profile] = ()
    scores: Sequence[TenantScore] = ()
