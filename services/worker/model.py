"""Domain types of the worker: what a slot runs, what it returns, what the worker reports.

Everything that crosses into a slot process (`TaskInput`, `HandlerResult`, `SlotReply`)
is a plain, picklable dataclass; protos stay at the edge (`convert.py`).
"""

from __future__ import annotations

import enum
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

INLINE_LIMIT_BYTES = 64 * 1024
PRECISIONS = ("fp32", "bf16", "fp16", "int8")


class Outcome(enum.Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"


class Reason:
    """Stable reasons of a failed outcome (TaskError.reason)."""

    HANDLER_ERROR = "HANDLER_ERROR"
    UNKNOWN_CATEGORY = "UNKNOWN_CATEGORY"
    UNKNOWN_MODEL = "UNKNOWN_MODEL"
    UNSUPPORTED_PRECISION = "UNSUPPORTED_PRECISION"
    INVALID_INPUT = "INVALID_INPUT"
    SLOT_CRASHED = "SLOT_CRASHED"
    TIMED_OUT = "TIMED_OUT"
    CANCELLED = "CANCELLED"
    WORKER_DRAINING = "WORKER_DRAINING"
    WORKER_STOPPING = "WORKER_STOPPING"
    INPUT_NOT_FOUND = "INPUT_NOT_FOUND"
    OUTPUT_NOT_PUBLISHED = "OUTPUT_NOT_PUBLISHED"
    # A GPU_ONLY task assigned to a CPU worker: a scheduler bug, refused here.
    INELIGIBLE_WORKER = "INELIGIBLE_WORKER"


class HandlerError(Exception):
    """Raised by a handler to fail a task with a specific reason instead of HANDLER_ERROR."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class BlockRef:
    """A datablock as a task names it (types_pb2.DatablockRef): an id, a URI, or both."""

    id: str = ""
    uri: str = ""
    size_bytes: int = 0

    @property
    def name(self) -> str:
        """The id, or the file stem of the URI when only a URI is given."""
        if self.id:
            return self.id
        path = urllib.parse.unquote(urllib.parse.urlparse(self.uri).path)
        return PurePosixPath(path).name.removesuffix(".pt")


@dataclass(frozen=True, kw_only=True)
class TaskInput:
    """Everything a handler may read about its task; picklable, sent to a slot process."""

    task_id: str
    attempt: int = 1
    tenant: str = ""
    category: str
    model_name: str = ""
    model_version: str = ""
    # "fp32", "bf16", "fp16" or "int8"; "" means the handler's default (fp32).
    precision: str = ""
    batch_size: int = 0
    item_count: int = 0
    parameters: dict[str, Any] = field(default_factory=dict)
    data: bytes = b""
    # Input datablocks as URIs (file://…), local paths or bare datablock ids; once the
    # worker has staged them (datablocks.py), local paths in the cache.
    inputs: tuple[str, ...] = ()
    # Output datablock ids.
    outputs: tuple[str, ...] = ()
    # The input references as the task gave them (what the worker stages).
    input_blocks: tuple[BlockRef, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    # "cpu_only", "gpu_only", "cpu_or_gpu", or "" when not given.
    eligibility: str = ""
    device: str = "cpu"
    artifact_dir: str = ""


@dataclass(frozen=True, kw_only=True)
class HandlerResult:
    """What a handler returns: a JSON-like summary, optional bytes inline or a file."""

    summary: dict[str, Any] = field(default_factory=dict)
    inline: bytes = b""
    artifact_path: str = ""
    # Set by the worker when the artifact was published to the artifact store.
    artifact_uri: str = ""
    items: int = 0


@dataclass(frozen=True)
class TaskFailure:
    reason: str
    message: str


@dataclass(frozen=True, kw_only=True)
class SlotReply:
    """A slot's answer to one task."""

    task_id: str
    result: HandlerResult | None = None
    failure: TaskFailure | None = None
    execution_s: float = 0.0
    peak_memory_bytes: int = 0


@dataclass(frozen=True)
class SlotReady:
    pid: int
    handlers: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Assignment:
    """A task handed to this worker by the scheduler, tagged with the link session."""

    input: TaskInput
    token: str
    timeout_s: float
    queued_at: datetime | None = None
    session: int = 0

    @property
    def task_id(self) -> str:
        return self.input.task_id

    @property
    def attempt(self) -> int:
        return self.input.attempt


@dataclass(frozen=True, kw_only=True)
class TaskReport:
    """The end of one assignment on this worker."""

    assignment: Assignment
    outcome: Outcome
    finished_at: datetime
    started_at: datetime | None = None
    result: HandlerResult | None = None
    failure: TaskFailure | None = None
    execution_s: float = 0.0
    peak_memory_bytes: int = 0


@dataclass(frozen=True, kw_only=True)
class TelemetrySample:
    cpu_utilization: float = 0.0
    memory_used_bytes: int = 0
    memory_total_bytes: int = 0
    gpu_utilization: float = 0.0
    gpu_memory_used_bytes: int = 0
    gpu_memory_total_bytes: int = 0
    gpu_power_watts: float = 0.0
    observed_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class DeviceInfo:
    """What this worker really has (never a GPU that torch cannot see)."""

    kind: str  # "cpu" or "gpu"
    device: str  # torch device string: "cpu" or "cuda:N"
    device_model: str
    memory_bytes: int
    gpu_memory_bytes: int = 0
    precisions: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class WorkerStatus:
    """A snapshot for registration, heartbeats and DescribeWorker."""

    worker_id: str
    device: DeviceInfo
    slots: int
    free_slots: int
    categories: tuple[str, ...]
    cached_datablocks: tuple[str, ...]
    telemetry: TelemetrySample
    address: str
    draining: bool
    running_task_ids: tuple[str, ...] = ()
