"""The scheduler's side of a worker's ConnectWorker stream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from common.errors import FieldViolation, InvalidArgument
from services.scheduler.convert import worker_from_proto
from services.scheduler.engine import Engine
from services.scheduler.results import task_results
from services.scheduler.workers import CLOSE, WorkerLink
from switchyard.v1 import scheduler_pb2

log = logging.getLogger(__name__)


async def serve_worker(
    engine: Engine, requests: AsyncIterator[scheduler_pb2.ConnectWorkerRequest]
) -> AsyncIterator[scheduler_pb2.ConnectWorkerResponse]:
    """Register, then pump assignments out while a reader task handles what comes in."""
    first = await anext(requests, None)
    if first is None or not first.HasField("register"):
        raise InvalidArgument([FieldViolation("register", "the first message must register the worker")])
    info = first.register.worker
    if not info.id:
        raise InvalidArgument([FieldViolation("register.worker.id", "must not be empty")])
    if engine.workers.get(info.id) is not None:
        engine.worker_lost(info.id, "replaced by a new connection")
    slots = worker_from_proto(info, info.id, engine.clock.now(), engine.config.worker_prefetch_per_slot)
    link = WorkerLink(slots, info, prefetch=engine.config.worker_prefetch_per_slot)
    engine.workers.add(link)
    engine.wake.set()
    log.info("worker registered", extra={"worker_id": info.id, "device_model": info.device_model})
    reader = asyncio.create_task(_read(engine, link, requests), name=f"worker-{info.id}")
    try:
        yield scheduler_pb2.ConnectWorkerResponse(
            registered=scheduler_pb2.Registered(
                worker_id=info.id, heartbeat_interval_ms=engine.config.heartbeat_interval_ms
            )
        )
        while True:
            message = await link.next_message()
            if message is CLOSE:
                return
            yield message
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        if engine.workers.get(info.id) is link:
            engine.worker_lost(info.id, "connection closed")


async def _read(
    engine: Engine, link: WorkerLink, requests: AsyncIterator[scheduler_pb2.ConnectWorkerRequest]
) -> None:
    worker_id = link.slots.worker_id
    try:
        async for message in requests:
            link.slots.last_heartbeat = engine.clock.now()
            kind = message.WhichOneof("event")
            if kind == "heartbeat":
                link.telemetry.CopyFrom(message.heartbeat.telemetry)
                engine.workers.fleet.cache_changed(link.slots, frozenset(message.heartbeat.cached_datablocks))
            elif kind == "results":
                task_results(engine, worker_id, message.results)
    except Exception as exc:  # a broken stream is the worker leaving, never a crash
        log.info("worker stream ended", extra={"worker_id": worker_id, "error": repr(exc)})
    link.close()
