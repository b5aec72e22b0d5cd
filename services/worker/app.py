"""The worker's composition root: device, slots, WorkerService, scheduler link, metrics."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from datetime import datetime
from pathlib import Path

from common.auth import InternalAuthenticator
from common.server import GrpcServer, Registration
from services.worker.agent import SchedulerLink
from services.worker.config import WorkerConfig
from services.worker.convert import metrics_to_proto
from services.worker.datablocks import DatablockCache, FileArtifactStore
from services.worker.device import detect_device, gpu_index
from services.worker.handlers.registry import HandlerRegistry
from services.worker.model import Assignment, TaskReport, WorkerStatus
from services.worker.pool import SlotPool
from services.worker.servicer import WorkerServicer
from services.worker.shipper import MetricsShipper
from services.worker.staging import Staging
from services.worker.telemetry import TelemetrySampler
from switchyard.v1 import worker_pb2_grpc

log = logging.getLogger(__name__)


class WorkerApp:
    """Start: gRPC server, slot processes, metrics shipper, scheduler link; SERVING once slots are up."""

    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.device = detect_device(config.device)
        self.artifact_dir = Path(config.artifact_dir).resolve()
        self.registry = HandlerRegistry.default(config.extra_handlers)
        self.telemetry = TelemetrySampler(gpu_index(self.device))
        self.worker_id = config.worker_id
        self.draining = False
        self.datablocks = DatablockCache(
            self._cache_dir(), config.datablock_cache_bytes, FileArtifactStore(self.artifact_dir)
        )
        self.pool = SlotPool(
            slots=config.slots,
            device=self.device.device,
            artifact_dir=str(self.artifact_dir),
            extra_handlers=config.extra_handlers,
            threads=config.slot_threads,
            staging=Staging(self.datablocks),
            on_started=self._on_started,
            on_finished=self._on_finished,
        )
        self.shipper = MetricsShipper(
            address=config.profile_store_address,
            token=config.internal_token,
            capacity=config.metrics_buffer,
            linger_s=config.metrics_linger_s,
        )
        self.link = SchedulerLink(
            address=config.scheduler_address,
            token=config.internal_token,
            pool=self.pool,
            status=self.status,
            on_finished=self._on_finished,
            on_registered=self._on_registered,
            heartbeat_interval_s=config.heartbeat_interval_s,
            default_timeout_s=config.task_timeout_s,
            device=self.device.device,
            artifact_dir=str(self.artifact_dir),
        )
        registration = Registration(
            worker_pb2_grpc.add_WorkerServiceServicer_to_server,
            WorkerServicer(self),
            "switchyard.v1.WorkerService",
        )
        self.server = GrpcServer(
            "worker", config, [registration], InternalAuthenticator(config.internal_token)
        )

    def _cache_dir(self) -> Path:
        if self.config.datablock_cache_dir:
            return Path(self.config.datablock_cache_dir).resolve()
        name = self.config.worker_id or f"{self.device.kind}-{socket.gethostname()}-{os.getpid()}"
        return self.artifact_dir.parent / "cache" / name

    async def start(self) -> None:
        self.artifact_dir.mkdir(parents=True, exist_ok=True)
        await self.server.start()
        if not self.worker_id:
            self.worker_id = f"{self.device.kind}-{socket.gethostname()}-{self.server.port}"
        log.info(
            "worker starting",
            extra={
                "worker_id": self.worker_id,
                "device": self.device.device,
                "model": self.device.device_model,
            },
        )
        await self.pool.start()
        self.shipper.start()
        self.link.start()
        await self.server.set_serving(True)

    async def stop(self) -> None:
        """Drain, give running tasks the grace period to finish (and be reported), then stop."""
        await self.drain()
        deadline = asyncio.get_running_loop().time() + self.config.grace_period_s
        while self.pool.running_task_ids() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.05)  # let the link write the last outcomes
        await self.link.stop()
        await self.pool.stop(timeout_s=self.config.grace_period_s)
        await self.shipper.stop()
        await self.server.stop()

    async def drain(self) -> None:
        """Take no new assignments; running tasks finish. Health goes NOT_SERVING."""
        if not self.draining:
            log.info(
                "draining", extra={"worker_id": self.worker_id, "running": len(self.pool.running_task_ids())}
            )
        self.draining = True
        await self.server.set_serving(False)

    def handler_names(self) -> tuple[str, ...]:
        return self.registry.names()

    @property
    def address(self) -> str:
        return self.config.advertise_address or f"{self.config.host}:{self.server.port}"

    def status(self) -> WorkerStatus:
        return WorkerStatus(
            worker_id=self.worker_id,
            device=self.device,
            slots=self.pool.size,
            free_slots=0 if self.draining else self.pool.free_slots(),
            categories=self.registry.names(),
            cached_datablocks=self.datablocks.ids(),
            telemetry=self.telemetry.sample(),
            address=self.address,
            draining=self.draining,
            running_task_ids=self.pool.running_task_ids(),
        )

    def _on_registered(self, worker_id: str) -> None:
        if worker_id != self.worker_id:
            log.info("scheduler named this worker", extra={"worker_id": worker_id, "was": self.worker_id})
            self.worker_id = worker_id

    def _on_started(self, assignment: Assignment, started_at: datetime) -> None:
        self.link.report_started(assignment, started_at)

    def _on_finished(self, report: TaskReport) -> None:
        self.link.report_finished(report)
        metrics = metrics_to_proto(
            report,
            worker_id=self.worker_id,
            device_model=self.device.device_model,
            telemetry=self.telemetry.sample(),
        )
        self.shipper.add(metrics)
