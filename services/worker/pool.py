"""The slot pool: runs assignments on free slots, enforces time limits, cancels, and
replaces slot processes that time out, are cancelled mid-task or die.

Every assignment ends in exactly one `TaskReport` given to `on_finished`; nothing that
happens in a slot can raise out of the pool.

Short tasks travel in batches (`batches.py` decides which), one pipe message each, and a
slot answers each task as it ends. Only the first unanswered task of a batch runs, so a
time limit, a cancel or a crash concerns that task alone: the slot is killed and replaced,
that task is reported, and the batch's tasks that had not started go back to the head of
the queue. A task of a batch cancelled before it started is reported at once and its late
reply ignored. No asyncio task, future or timer is made per job: a slot's replies arrive
through a read callback, and each slot keeps one timer, re-armed only when it fires before
the running task's limit.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from prometheus_client import Counter

from common.timeutil import utcnow
from services.worker.batches import Job, Lane, RunTimes, take_batch
from services.worker.datablocks import DatablockNotFound
from services.worker.model import (
    Assignment,
    Outcome,
    Reason,
    SlotReply,
    TaskFailure,
    TaskReport,
)
from services.worker.slots import Slot, SlotCrashed
from services.worker.staging import Staging

log = logging.getLogger(__name__)

TASKS = Counter("switchyard_worker_tasks_total", "Tasks finished by this worker", ["category", "outcome"])
RESTART_BACKOFF_S = (0.5, 10.0)


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
        self._lanes = [
            Lane(
                Slot(
                    i,
                    device=device,
                    artifact_dir=artifact_dir,
                    extra_handlers=extra_handlers,
                    threads=threads,
                    executor=self._executor,
                    datablock_dir=datablock_dir,
                    on_reply=self._on_reply,
                    on_lost=self._on_lost,
                )
            )
            for i in range(slots)
        ]
        self._on_started, self._on_finished = on_started, on_finished
        self._free: deque[Lane] = deque()
        # Jobs waiting for a slot, first come first served (cancelled ones are skipped).
        self._waiting: deque[Job] = deque()
        self._jobs: dict[str, Job] = {}
        self._run_times = RunTimes()
        # Finished tasks by (category, outcome) not yet added to TASKS: added in bulk (a
        # labelled counter takes a lock per call), whenever the pool runs dry or 100 wait.
        self._uncounted: dict[tuple[str, str], int] = {}
        self._uncounted_total = 0
        self._background: set[asyncio.Task[Any]] = set()
        self._dispatch_due = False
        self._stopping = False
        self.batches = 0
        self.batched_tasks = 0

    @property
    def size(self) -> int:
        return len(self._lanes)

    @property
    def handlers(self) -> tuple[str, ...]:
        return self._lanes[0].slot.handlers if self._lanes else ()

    def free_slots(self) -> int:
        return len(self._free)

    @property
    def busy(self) -> bool:
        """Whether any task accepted here has not been reported yet."""
        return bool(self._jobs)

    def running_task_ids(self) -> tuple[str, ...]:
        return tuple(self._jobs)

    def slot_pids(self) -> tuple[int | None, ...]:
        return tuple(lane.slot.pid for lane in self._lanes)

    async def start(self) -> None:
        await asyncio.gather(*(lane.slot.start() for lane in self._lanes))
        self._free.extend(self._lanes)

    def submit(self, assignment: Assignment) -> bool:
        """Accept an assignment (runs when a slot is free); False if the task is already here."""
        if assignment.task_id in self._jobs or self._stopping:
            return False
        job = Job(assignment, assignment.input)
        self._jobs[assignment.task_id] = job
        if self._staging is not None and assignment.input.input_blocks:
            self._spawn(self._stage(job))
        else:
            self._enqueue(job)
        return True

    def cancel(self, task_ids: list[str] | tuple[str, ...], reason: str = Reason.CANCELLED) -> list[str]:
        """Stop these tasks (a running one's slot is killed and replaced); returns the ids found here."""
        found = []
        for task_id in task_ids:
            job = self._jobs.get(task_id)
            if job is None or job.done:
                continue
            found.append(task_id)
            failure = TaskFailure(reason, "cancelled")
            lane = job.lane
            if lane is not None and lane.batch and lane.batch[0] is job:
                self._stop_running(lane, "cancelled", Outcome.CANCELLED, failure)
            else:
                self._finish(job, Outcome.CANCELLED, failure=failure)
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
        await asyncio.gather(*(lane.slot.stop() for lane in self._lanes), return_exceptions=True)
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.flush_counts()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _stage(self, job: Job) -> None:
        assert self._staging is not None
        try:
            task = await self._staging.prepare(job.assignment.input)
        except DatablockNotFound as exc:
            log.warning("input datablock missing", extra={"task_id": job.assignment.task_id})
            self._finish(job, Outcome.FAILED, failure=TaskFailure(Reason.INPUT_NOT_FOUND, str(exc)))
            return
        except Exception as exc:  # a bug here must not lose the task or kill the worker
            log.exception("staging failed", extra={"task_id": job.assignment.task_id})
            self._finish(job, Outcome.FAILED, failure=TaskFailure(Reason.SLOT_CRASHED, repr(exc)))
            return
        if job.done:  # cancelled meanwhile
            self._staging.release(task)
            return
        job.task, job.staged = task, True
        self._enqueue(job)

    def _enqueue(self, job: Job) -> None:
        """Queue a job; the jobs queued in this loop turn are dispatched together."""
        self._waiting.append(job)
        self._dispatch_soon()

    def _dispatch_soon(self) -> None:
        if not self._dispatch_due:
            self._dispatch_due = True
            asyncio.get_running_loop().call_soon(self._dispatch)

    def _dispatch(self) -> None:
        self._dispatch_due = False
        while self._waiting and self._free:
            lane = self._free.popleft()
            share = -(-len(self._waiting) // (len(self._free) + 1))
            batch = take_batch(self._waiting, self._run_times, share)
            if not batch:
                self._free.appendleft(lane)
                return
            self._send(lane, batch)

    def _send(self, lane: Lane, batch: list[Job]) -> None:
        for job in batch:
            job.lane = lane
        lane.batch.extend(batch)
        self.batches += 1
        self.batched_tasks += len(batch)
        try:
            lane.slot.send([job.task for job in batch])
        except SlotCrashed:
            self._lose(lane, "not running")
            return
        self._begin(lane)

    def _begin(self, lane: Lane) -> None:
        """The lane's first job starts now: its time limit runs from here."""
        job = lane.batch[0]
        loop = asyncio.get_running_loop()
        timeout = job.assignment.timeout_s
        lane.deadline = loop.time() + timeout if timeout else None
        if lane.deadline is not None and (lane.timer is None or lane.timer.when() > lane.deadline):
            if lane.timer is not None:
                lane.timer.cancel()
            lane.timer = loop.call_at(lane.deadline, self._check_time, lane)
        if not job.done:
            job.started_at = utcnow()
            self._on_started(job.assignment, job.started_at)

    def _check_time(self, lane: Lane) -> None:
        lane.timer = None
        if not lane.batch or lane.deadline is None:
            return
        loop = asyncio.get_running_loop()
        if loop.time() < lane.deadline:  # the task that was timed here has ended
            lane.timer = loop.call_at(lane.deadline, self._check_time, lane)
            return
        timeout = lane.batch[0].assignment.timeout_s
        failure = TaskFailure(Reason.TIMED_OUT, f"task ran past its time limit of {timeout:g}s")
        self._stop_running(lane, "timed out", Outcome.TIMED_OUT, failure)

    def _on_reply(self, slot: Slot, reply: SlotReply) -> None:
        lane = self._lanes[slot.index]
        batch = lane.batch
        if not batch or reply.task_id != batch[0].task.task_id:
            self._lose(lane, "answered out of turn")
            return
        job = batch.popleft()
        self._run_times.observe(job.task.category, reply.execution_s)
        if batch:
            self._begin(lane)
        else:
            lane.deadline = None
        if not job.done:
            job.lane = None
            self._from_reply(job, reply)
        if not batch:
            self._release(lane)

    def _on_lost(self, slot: Slot, why: str) -> None:
        self._lose(self._lanes[slot.index], why)

    def _lose(self, lane: Lane, why: str) -> None:
        """The slot process died: its running task failed, the rest of its batch goes back."""
        if lane.batch:
            failure = TaskFailure(Reason.SLOT_CRASHED, f"slot {lane.slot.index} {why}")
            self._stop_running(lane, "crashed", Outcome.FAILED, failure)
            return
        if lane in self._free:
            self._free.remove(lane)
        self._recycle(lane, "died idle")

    def _stop_running(self, lane: Lane, reason: str, outcome: Outcome, failure: TaskFailure) -> None:
        """End the lane's running job with this outcome, requeue the jobs of its batch that
        had not started, and replace the slot process."""
        job = lane.batch.popleft()
        rest = [j for j in lane.batch if not j.done]
        lane.batch.clear()
        for later in rest:
            later.lane = None
        self._waiting.extendleft(reversed(rest))
        self._finish(job, outcome, failure=failure)
        self._recycle(lane, reason)
        if rest:
            # Not at once: a cancel of several tasks (all of them, when the link drops) must
            # not hand the rest to another slot only to kill that one too.
            self._dispatch_soon()

    def _recycle(self, lane: Lane, reason: str) -> None:
        lane.deadline = None
        if lane.timer is not None:
            lane.timer.cancel()
            lane.timer = None
        lane.slot.abort()
        self._spawn(self._restart(lane, reason))

    async def _restart(self, lane: Lane, reason: str) -> None:
        """Start a fresh process for the slot, retrying with backoff until it works."""
        await lane.slot.kill()
        delay = RESTART_BACKOFF_S[0]
        while not self._stopping:
            try:
                await lane.slot.restart(reason)
            except (SlotCrashed, OSError):
                log.exception("slot restart failed", extra={"slot": lane.slot.index})
                await asyncio.sleep(delay)
                delay = min(delay * 2, RESTART_BACKOFF_S[1])
                continue
            self._release(lane)
            return

    def _release(self, lane: Lane) -> None:
        self._free.append(lane)
        if self._waiting:
            self._dispatch()

    def flush_counts(self) -> None:
        """Add the tasks finished since the last call to the TASKS counter."""
        for key, count in self._uncounted.items():
            TASKS.labels(*key).inc(count)
        self._uncounted.clear()
        self._uncounted_total = 0

    def _from_reply(self, job: Job, reply: SlotReply) -> None:
        if reply.failure is not None:
            self._finish(job, Outcome.FAILED, failure=reply.failure, reply=reply)
        elif self._staging is not None and reply.result and self._staging.has_outputs(job.task, reply.result):
            self._spawn(self._publish(job, reply))
        else:
            self._finish(job, Outcome.SUCCEEDED, reply=reply)

    async def _publish(self, job: Job, reply: SlotReply) -> None:
        assert self._staging is not None and reply.result is not None
        try:
            result = await self._staging.publish(job.task, reply.result)
        except OSError as exc:
            log.exception("cannot publish outputs", extra={"task_id": job.task.task_id})
            failure = TaskFailure(Reason.OUTPUT_NOT_PUBLISHED, f"outputs not published: {exc}")
            self._finish(job, Outcome.FAILED, failure=failure, reply=reply)
            return
        self._finish(job, Outcome.SUCCEEDED, reply=dataclasses.replace(reply, result=result))

    def _finish(
        self,
        job: Job,
        outcome: Outcome,
        *,
        failure: TaskFailure | None = None,
        reply: SlotReply | None = None,
    ) -> None:
        """Report a job once: later calls for the same job do nothing."""
        if job.done:
            return
        job.done, job.lane = True, None
        self._jobs.pop(job.assignment.task_id, None)
        if job.staged and self._staging is not None:
            self._staging.release(job.task)
        finished = utcnow()
        if reply is None:
            elapsed = (finished - job.started_at).total_seconds() if job.started_at else 0.0
        report = TaskReport(
            assignment=job.assignment,
            outcome=outcome,
            started_at=job.started_at,
            finished_at=finished,
            result=reply.result if reply else None,
            failure=failure,
            execution_s=elapsed if reply is None else reply.execution_s,
            peak_memory_bytes=reply.peak_memory_bytes if reply else 0,
        )
        key = (job.assignment.input.category, outcome.value)
        self._uncounted[key] = self._uncounted.get(key, 0) + 1
        self._uncounted_total += 1
        if self._uncounted_total >= 100 or not self._jobs:
            self.flush_counts()
        try:
            self._on_finished(report)
        except Exception:  # the caller's bug must not end the slot that answered
            log.exception("on_finished failed", extra={"task_id": job.assignment.task_id})
