"""The slot pool: runs assignments on free slots, enforces time limits, cancels, and
replaces slot processes that time out, are cancelled mid-task or die.

Every assignment ends in exactly one `TaskReport` given to `on_finished`; nothing that
happens in a slot can raise out of the pool.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prometheus_client import Counter

from common.timeutil import utcnow
from services.worker.datablocks import DatablockNotFound
from services.worker.model import (
    Assignment,
    Outcome,
    Reason,
    SlotReply,
    TaskFailure,
    TaskInput,
    TaskReport,
)
from services.worker.slots import Slot, SlotCrashed
from services.worker.staging import Staging

log = logging.getLogger(__name__)

TASKS = Counter("switchyard_worker_tasks_total", "Tasks finished by this worker", ["category", "outcome"])
RESTART_BACKOFF_S = (0.5, 10.0)


@dataclass
class _Job:
    assignment: Assignment
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    cancel_reason: str = Reason.CANCELLED
    started_at: datetime | None = None
    # Set while the task runs on a slot: wakes `_first_of` at once on a cancel.
    on_cancel: Callable[[], None] | None = None


class SlotPool:
    def __init__(
        self,
        *,
        slots: int,
        device: str,
        artifact_dir: str,
        extra_handlers: tuple[str, ...] = (),
        threads: int = 1,
        staging: Staging | None = None,
        on_started: Callable[[Assignment, datetime], None],
        on_finished: Callable[[TaskReport], None],
    ) -> None:
        self._staging = staging
        datablock_dir = str(staging.cache.folder) if staging else ""
        self._executor = ThreadPoolExecutor(max_workers=2 * slots + 2, thread_name_prefix="slot-io")
        self._slots = [
            Slot(
                i,
                device=device,
                artifact_dir=artifact_dir,
                extra_handlers=extra_handlers,
                threads=threads,
                executor=self._executor,
                datablock_dir=datablock_dir,
            )
            for i in range(slots)
        ]
        self._on_started, self._on_finished = on_started, on_finished
        self._free: deque[Slot] = deque()
        # Jobs waiting for a slot, first come first served; a freed slot goes to the first.
        self._waiters: deque[tuple[_Job, asyncio.Future[Slot | None]]] = deque()
        self._jobs: dict[str, _Job] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._stopping = False

    @property
    def size(self) -> int:
        return len(self._slots)

    @property
    def handlers(self) -> tuple[str, ...]:
        return self._slots[0].handlers if self._slots else ()

    def free_slots(self) -> int:
        return len(self._free)

    def running_task_ids(self) -> tuple[str, ...]:
        return tuple(self._jobs)

    def slot_pids(self) -> tuple[int | None, ...]:
        return tuple(slot.pid for slot in self._slots)

    async def start(self) -> None:
        await asyncio.gather(*(slot.start() for slot in self._slots))
        for slot in self._slots:
            self._release(slot)

    def submit(self, assignment: Assignment) -> bool:
        """Accept an assignment (runs when a slot is free); False if the task is already here."""
        if assignment.task_id in self._jobs or self._stopping:
            return False
        job = _Job(assignment)
        self._jobs[assignment.task_id] = job
        self._spawn(self._run(job))
        return True

    def cancel(self, task_ids: list[str] | tuple[str, ...], reason: str = Reason.CANCELLED) -> list[str]:
        """Stop these tasks (their slots are killed and replaced); returns the ids found here."""
        found = []
        for task_id in task_ids:
            job = self._jobs.get(task_id)
            if job is not None and not job.cancel.is_set():
                job.cancel_reason = reason
                job.cancel.set()
                if job.on_cancel is not None:
                    job.on_cancel()
                found.append(task_id)
        return found

    def cancel_all(self, reason: str) -> list[str]:
        return self.cancel(tuple(self._jobs), reason)

    async def stop(self, timeout_s: float = 10.0) -> None:
        self._stopping = True
        self.cancel_all(Reason.WORKER_STOPPING)
        runners = list(self._background)
        if runners:
            await asyncio.wait(runners, timeout=timeout_s)
        for task in self._background:
            task.cancel()
        await asyncio.gather(*(slot.stop() for slot in self._slots), return_exceptions=True)
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _run(self, job: _Job) -> None:
        report: TaskReport | None = None
        task: TaskInput | None = None
        try:
            try:
                task = await self._stage(job.assignment.input)
            except DatablockNotFound as exc:
                log.warning("input datablock missing", extra={"task_id": job.assignment.task_id})
                report = self._report(
                    job, Outcome.FAILED, failure=TaskFailure(Reason.INPUT_NOT_FOUND, str(exc))
                )
                return
            slot = await self._acquire(job)
            if slot is None:
                report = self._report(
                    job, Outcome.CANCELLED, failure=TaskFailure(job.cancel_reason, "cancelled")
                )
                return
            job.started_at = utcnow()
            self._on_started(job.assignment, job.started_at)
            report = await self._execute(job, slot, task)
        except Exception as exc:  # a bug here must not lose the task or kill the worker
            log.exception("task runner failed", extra={"task_id": job.assignment.task_id})
            report = self._report(job, Outcome.FAILED, failure=TaskFailure(Reason.SLOT_CRASHED, repr(exc)))
        finally:
            if task is not None and self._staging is not None:
                self._staging.release(task)
            self._jobs.pop(job.assignment.task_id, None)
            if report is not None:
                TASKS.labels(job.assignment.input.category, report.outcome.value).inc()
                self._on_finished(report)

    async def _stage(self, task: TaskInput) -> TaskInput:
        return await self._staging.prepare(task) if self._staging else task

    async def _acquire(self, job: _Job) -> Slot | None:
        """Wait for a free slot, or for the job to be cancelled first (then None)."""
        if job.cancel.is_set():
            return None
        if self._free and not self._waiters:
            return self._free.popleft()
        waiter: asyncio.Future[Slot | None] = asyncio.get_running_loop().create_future()
        self._waiters.append((job, waiter))

        def cancelled() -> None:
            if not waiter.done():
                waiter.set_result(None)

        job.on_cancel = cancelled
        try:
            slot = await waiter
        finally:
            job.on_cancel = None
        if slot is not None and job.cancel.is_set():
            self._release(slot)
            return None
        return slot

    def _release(self, slot: Slot) -> None:
        """A slot is free again: to the first job still waiting, else to the free list."""
        while self._waiters:
            _, waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(slot)
                return
        self._free.append(slot)

    async def _execute(self, job: _Job, slot: Slot, task: TaskInput) -> TaskReport:
        if not slot.alive():
            await slot.restart("died idle")
        running = asyncio.ensure_future(slot.run(task))
        timeout = job.assignment.timeout_s
        await self._first_of(job, running, timeout)
        if running.done():
            try:
                reply = running.result()
            except SlotCrashed as exc:
                self._spawn(self._recycle(slot, "crashed", running))
                return self._report(job, Outcome.FAILED, failure=TaskFailure(Reason.SLOT_CRASHED, str(exc)))
            self._release(slot)
            return await self._from_reply(job, task, reply)
        if job.cancel.is_set():
            self._spawn(self._recycle(slot, "cancelled", running))
            return self._report(job, Outcome.CANCELLED, failure=TaskFailure(job.cancel_reason, "cancelled"))
        self._spawn(self._recycle(slot, "timed out", running))
        message = f"task ran past its time limit of {timeout:g}s"
        return self._report(job, Outcome.TIMED_OUT, failure=TaskFailure(Reason.TIMED_OUT, message))

    @staticmethod
    async def _first_of(job: _Job, running: asyncio.Future[Any], timeout: float | None) -> None:
        """Until the task's reply, its cancel or its time limit, whichever comes first (one
        future and a timer: cheaper per task than `asyncio.wait` over a second task)."""
        loop = asyncio.get_running_loop()
        woken: asyncio.Future[None] = loop.create_future()

        def wake(*_: object) -> None:
            if not woken.done():
                woken.set_result(None)

        running.add_done_callback(wake)
        job.on_cancel = wake
        timer = loop.call_later(timeout, wake) if timeout else None
        if job.cancel.is_set():
            wake()
        try:
            await woken
        finally:
            job.on_cancel = None
            running.remove_done_callback(wake)
            if timer is not None:
                timer.cancel()

    async def _recycle(self, slot: Slot, reason: str, running: asyncio.Future[Any]) -> None:
        """Kill a slot's process and start a fresh one, retrying with backoff until it works."""
        await slot.kill(pending=running)
        if self._stopping:
            return
        delay = RESTART_BACKOFF_S[0]
        while not self._stopping:
            try:
                await slot.restart(reason)
                self._release(slot)
                return
            except SlotCrashed:
                log.exception("slot restart failed", extra={"slot": slot.index})
                await asyncio.sleep(delay)
                delay = min(delay * 2, RESTART_BACKOFF_S[1])

    async def _from_reply(self, job: _Job, task: TaskInput, reply: SlotReply) -> TaskReport:
        if reply.failure is not None:
            return self._report(job, Outcome.FAILED, failure=reply.failure, reply=reply)
        if self._staging is not None and reply.result is not None:
            try:
                result = await self._staging.publish(task, reply.result)
            except OSError as exc:
                log.exception("cannot publish outputs", extra={"task_id": task.task_id})
                failure = TaskFailure(Reason.OUTPUT_NOT_PUBLISHED, f"outputs not published: {exc}")
                return self._report(job, Outcome.FAILED, failure=failure, reply=reply)
            reply = dataclasses.replace(reply, result=result)
        return self._report(job, Outcome.SUCCEEDED, reply=reply)

    def _report(
        self,
        job: _Job,
        outcome: Outcome,
        *,
        failure: TaskFailure | None = None,
        reply: SlotReply | None = None,
    ) -> TaskReport:
        finished = utcnow()
        elapsed = (finished - job.started_at).total_seconds() if job.started_at else 0.0
        return TaskReport(
            assignment=job.assignment,
            outcome=outcome,
            started_at=job.started_at,
            finished_at=finished,
            result=reply.result if reply else None,
            failure=failure,
            execution_s=reply.execution_s if reply else elapsed,
            peak_memory_bytes=reply.peak_memory_bytes if reply else 0,
        )
