"""Settings of the worker service (section `worker`, env `SWITCHYARD_WORKER_*`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from common.config import ServerConfig

_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")
_HANDLER_SPEC = re.compile(r"^[a-z][a-z0-9_]*=[\w.]+:[\w.]+$")


@dataclass(frozen=True, kw_only=True)
class WorkerConfig(ServerConfig):
    section: ClassVar[str] = "worker"

    port: int = 50061
    metrics_port: int = -1
    # "cpu", "cuda" or "cuda:N"; a cuda device that torch cannot see runs as a CPU worker.
    device: str = "cpu"
    slots: int = 2
    # Empty: derived as "<kind>-<hostname>-<port>".
    worker_id: str = ""
    # host:port; "a:1,b:2" lists an active scheduler and its standby (tried in turn).
    scheduler_address: str = "127.0.0.1:50052"
    profile_store_address: str = "127.0.0.1:50053"
    artifact_dir: str = ".switchyard/artifacts"
    task_timeout_s: float = 300.0
    metrics_buffer: int = 10000
    # How long unsent metrics wait for company before a batch goes to the profile store
    # (each batch costs a write and an acknowledgement on the stream; metrics are not on
    # any task's path).
    metrics_linger_s: float = 0.2
    heartbeat_interval_s: float = 1.0
    # Address announced to the scheduler for WorkerService; empty: host:bound port.
    advertise_address: str = ""
    # Extra handlers besides built-ins and entry points: "category=module:callable".
    extra_handlers: tuple[str, ...] = ()
    # torch intra-op threads in each slot process.
    slot_threads: int = 1
    # Bound of the local datablock cache (LRU, bytes) and its folder; empty folder:
    # "<artifact_dir>/../cache/<worker id>" (local disk, unlike the shared artifact dir).
    datablock_cache_bytes: int = 2 * 1024**3
    datablock_cache_dir: str = ""

    def problems(self) -> list[str]:
        out = super().problems()
        if not _DEVICE.match(self.device):
            out.append(f"device: {self.device!r} is not cpu, cuda or cuda:N")
        if not 1 <= self.slots <= 256:
            out.append(f"slots: {self.slots} is not between 1 and 256")
        if not self.scheduler_address:
            out.append("scheduler_address: must not be empty")
        if not self.profile_store_address:
            out.append("profile_store_address: must not be empty")
        if not self.artifact_dir:
            out.append("artifact_dir: must not be empty")
        if self.task_timeout_s <= 0:
            out.append("task_timeout_s: must be positive")
        if not 0 <= self.metrics_linger_s <= 5:
            out.append("metrics_linger_s: must be between 0 and 5 seconds")
        if self.metrics_buffer < 1:
            out.append("metrics_buffer: must be at least 1")
        if self.heartbeat_interval_s <= 0:
            out.append("heartbeat_interval_s: must be positive")
        if self.slot_threads < 1:
            out.append("slot_threads: must be at least 1")
        if self.datablock_cache_bytes < 0:
            out.append("datablock_cache_bytes: must not be negative")
        out.extend(
            f"extra_handlers: {spec!r} is not category=module:callable"
            for spec in self.extra_handlers
            if not _HANDLER_SPEC.match(spec)
        )
        return out
