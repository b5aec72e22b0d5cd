"""The worker's side of SchedulerService.ConnectWorker: register, heartbeat, run what is
assigned, report what started and finished, and reconnect when the stream breaks.

A broken stream stops every task of this worker (DESIGN §3): the scheduler requeues
them, so their late outcomes belong to a superseded session and are not sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

import grpc

from common.channels import authed_channel, bearer
from common.timeutil import utcnow
from services.worker.convert import (
    assignment_from_proto,
    heartbeat_to_proto,
    worker_info_to_proto,
)
from services.worker.model import (
    Assignment,
    Outcome,
    Reason,
    TaskFailure,
    TaskInput,
    TaskReport,
    WorkerStatus,
)
from services.worker.pool import SlotPool
from services.worker.results import PendingResults
from switchyard.v1 import scheduler_pb2, scheduler_pb2_grpc

log = logging.getLogger(__name__)

BACKOFF_S = (0.2, 5.0)
# When to write (a write costs a round trip through gRPC's completion queue here and a
# message to the scheduler): outcomes go at once when the pool has nothing left to run, so
# a lone task is answered without delay; while it runs more, an outcome waits up to
# WRITE_GAP_S for those to join it. A started event waits up to STARTED_LINGER_S for its
# outcome to travel with. One timer per link, no task or future per event.
WRITE_GAP_S = 0.005
STARTED_LINGER_S = 0.01
DISCONNECTED = "SCHEDULER_DISCONNECTED"
_Call = grpc.aio.StreamStreamCall[scheduler_pb2.ConnectWorkerRequest, scheduler_pb2.ConnectWorkerResponse]


class SchedulerLink:
    def __init__(
        self,
        *,
        address: str,
        token: str,
        pool: SlotPool,
        status: Callable[[], WorkerStatus],
        on_finished: Callable[[TaskReport], None],
        on_registered: Callable[[str], None],
        heartbeat_interval_s: float,
        default_timeout_s: float,
        device: str,
        artifact_dir: str,
    ) -> None:
        # Several addresses (comma-separated): an active scheduler and its standby; on
        # failure the link tries the next one.
        self._addresses = [a.strip() for a in address.split(",") if a.strip()]
        self._index = 0
        self._token = token
        self._pool, self._status = pool, status
        self._on_finished, self._on_registered = on_finished, on_registered
        self._default_interval_s = heartbeat_interval_s
        self.heartbeat_interval_s = heartbeat_interval_s
        self._timeout_s, self._device, self._artifact_dir = default_timeout_s, device, artifact_dir
        self.session = 0
        self.connected = False
        self.registrations = 0
        self._results = PendingResults()
        self._heartbeat_due = False
        self._wake = asyncio.Event()
        # Results are due now, or at the loop time _flush_when (by its timer).
        self._results_due = False
        self._flush_when: float | None = None
        self._flush_timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="scheduler-link")

    async def stop(self) -> None:
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def run(self) -> None:
        """Keep a session open, reconnecting with capped exponential backoff."""
        delay, failures = BACKOFF_S[0], 0
        while not self._stopped:
            registrations = self.registrations
            try:
                await self._session()
                log.warning("scheduler closed the worker stream", extra={"address": self._address})
            except grpc.aio.AioRpcError as exc:
                failures += 1
                level = logging.WARNING if failures == 1 or failures % 20 == 0 else logging.DEBUG
                log.log(
                    level,
                    "cannot reach the scheduler, retrying",
                    extra={"address": self._address, "code": str(exc.code()), "attempts": failures},
                )
            except Exception:
                log.exception("scheduler link error")
            self._end_session()
            if self.registrations > registrations:
                delay, failures = BACKOFF_S[0], 0
            else:
                self._index = (self._index + 1) % len(self._addresses)
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_S[1])

    @property
    def _address(self) -> str:
        return self._addresses[self._index]

    def _end_session(self) -> None:
        self.connected = False
        self.session += 1
        self._results.clear()
        self._cancel_flush()
        stopped = self._pool.cancel_all(DISCONNECTED)
        if stopped:
            log.warning("lost the scheduler: stopped running tasks", extra={"tasks": ",".join(stopped)})

    async def _session(self) -> None:
        self.session += 1
        session = self.session
        channel = authed_channel(self._address, None)
        log.debug("connecting to the scheduler", extra={"address": self._address})
        call = scheduler_pb2_grpc.SchedulerServiceStub(channel).ConnectWorker(metadata=bearer(self._token))
        try:
            register = scheduler_pb2.RegisterWorker(worker=worker_info_to_proto(self._status()))
            await call.write(scheduler_pb2.ConnectWorkerRequest(register=register))
            first = await call.read()
            if not isinstance(first, scheduler_pb2.ConnectWorkerResponse) or not first.HasField("registered"):
                log.warning("scheduler did not answer the registration")
                return
            self._registered(first.registered)
            await self._serve(call, session)
        finally:
            call.cancel()
            await channel.close()

    def _registered(self, message: scheduler_pb2.Registered) -> None:
        self.registrations += 1
        if message.worker_id:
            self._on_registered(message.worker_id)
        interval = message.heartbeat_interval_ms / 1000.0
        self.heartbeat_interval_s = interval if interval > 0 else self._default_interval_s
        self.connected = True
        log.info(
            "registered with the scheduler", extra={"worker_id": message.worker_id, "session": self.session}
        )

    async def _serve(self, call: _Call, session: int) -> None:
        writer = asyncio.create_task(self._write_loop(call, session))
        beats = asyncio.create_task(self._heartbeat_loop(session))
        try:
            while True:
                message = await call.read()
                if not isinstance(message, scheduler_pb2.ConnectWorkerResponse) or writer.done():
                    break
                self._handle(message, session)
        finally:
            beats.cancel()
            writer.cancel()
            await asyncio.gather(writer, beats, return_exceptions=True)

    def _handle(self, message: scheduler_pb2.ConnectWorkerResponse, session: int) -> None:
        event = message.WhichOneof("event")
        if event == "assignments":
            status = self._status()  # once per message: it lists every running task
            for item in message.assignments.assignments:
                self._accept(item, session, status)
        elif event == "cancel":
            found = self._pool.cancel(list(message.cancel.task_ids), Reason.CANCELLED)
            log.info(
                "cancel from scheduler", extra={"asked": len(message.cancel.task_ids), "found": len(found)}
            )
        elif event == "registered":
            self._registered(message.registered)

    def _accept(self, item: scheduler_pb2.Assignment, session: int, status: WorkerStatus) -> None:
        """Run one assignment, or answer it at once when it cannot run here."""
        try:
            assignment = assignment_from_proto(
                item,
                device=self._device,
                artifact_dir=self._artifact_dir,
                default_timeout_s=self._timeout_s,
                session=session,
            )
        except Exception as exc:
            log.exception("bad assignment", extra={"task_id": item.task.id})
            failure = TaskFailure(Reason.INVALID_INPUT, f"assignment cannot be read: {exc}")
            self._reject(_placeholder(item, session), failure)
            return
        if status.draining:
            self._reject(assignment, TaskFailure(Reason.WORKER_DRAINING, "worker is draining"))
        elif assignment.input.eligibility == "gpu_only" and status.device.kind != "gpu":
            # The scheduler must never do this; refusing keeps a CPU from faking GPU work.
            log.error(
                "scheduler bug: GPU_ONLY task assigned to a CPU worker",
                extra={"task_id": assignment.task_id, "worker_id": status.worker_id},
            )
            message = f"task {assignment.task_id} is GPU_ONLY and this is a CPU worker"
            self._reject(assignment, TaskFailure(Reason.INELIGIBLE_WORKER, message))
        elif assignment.input.category not in status.categories:
            message = f"no handler for category {assignment.input.category!r} on this worker"
            self._reject(assignment, TaskFailure(Reason.UNKNOWN_CATEGORY, message))
        elif not self._pool.submit(assignment):
            log.info("duplicate assignment ignored", extra={"task_id": assignment.task_id})

    def _reject(self, assignment: Assignment, failure: TaskFailure) -> None:
        self._on_finished(
            TaskReport(assignment=assignment, outcome=Outcome.FAILED, finished_at=utcnow(), failure=failure)
        )

    def report_started(self, assignment: Assignment, started_at: datetime) -> None:
        if self.connected and assignment.session == self.session:
            self._results.started(assignment, started_at)
            if not self._results_due and self._flush_when is None:
                self._flush_at(asyncio.get_running_loop().time() + STARTED_LINGER_S)

    def report_finished(self, report: TaskReport) -> None:
        if self.connected and report.assignment.session == self.session:
            self._results.finished(report)
            # While the pool runs more tasks, their outcomes are due soon: wait for them.
            if self._pool.busy:
                self._flush_at(asyncio.get_running_loop().time() + WRITE_GAP_S)
            else:
                self._flush_at(0.0)
        else:
            log.info("outcome of a superseded session not sent", extra={"task_id": report.assignment.task_id})

    def _flush_rest(self) -> None:
        """After a write, what is still held goes as a report would have sent it: at once
        when a message's worth waits or the pool is idle, else after the write gap. Nothing
        else would send it: heartbeats do not carry results."""
        if self._results.full or not self._pool.busy:
            self._flush_at(0.0)
        else:
            self._flush_at(asyncio.get_running_loop().time() + WRITE_GAP_S)

    def _flush_at(self, when: float) -> None:
        """Have the write loop write the results at loop time `when` (at once if it has
        passed), unless they are due earlier already."""
        if self._results_due or (self._flush_when is not None and self._flush_when <= when):
            return
        self._cancel_flush()
        loop = asyncio.get_running_loop()
        if when <= loop.time():
            self._flush_due()
        else:
            self._flush_when = when
            self._flush_timer = loop.call_at(when, self._flush_due)

    def _flush_due(self) -> None:
        self._flush_when, self._flush_timer = None, None
        self._results_due = True
        self._wake.set()

    def _cancel_flush(self) -> None:
        self._results_due = False
        self._flush_when = None
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None

    async def _heartbeat_loop(self, session: int) -> None:
        while session == self.session:
            await asyncio.sleep(self.heartbeat_interval_s)
            self._heartbeat_due = True
            self._wake.set()

    async def _write_loop(self, call: _Call, session: int) -> None:
        """The only writer of the stream: the results when due, a heartbeat when due."""
        while session == self.session:
            await self._wake.wait()
            self._wake.clear()
            # What was reported in the same loop turn joins this message; what is reported
            # while it is written asks for the next write itself.
            if self._results_due:
                self._cancel_flush()
                if self._results:
                    await call.write(self._results.take())
                    if self._results:  # more than one message held, or left for later
                        self._flush_rest()
            if self._heartbeat_due:
                self._heartbeat_due = False
                heartbeat = heartbeat_to_proto(self._status())
                await call.write(scheduler_pb2.ConnectWorkerRequest(heartbeat=heartbeat))


def _placeholder(item: scheduler_pb2.Assignment, session: int) -> Assignment:
    task_input = TaskInput(task_id=item.task.id, attempt=item.task.attempt, category=item.task.category)
    return Assignment(input=task_input, token=item.assignment_token, timeout_s=0.0, session=session)
