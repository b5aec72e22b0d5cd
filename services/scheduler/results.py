"""What workers report on their stream: a task started, a task finished.

Reports of an attempt the scheduler no longer expects (a task requeued or cancelled since,
a worker replaced) change nothing: the attempt number and the worker must both match.
"""

from __future__ import annotations

import logging

from services.scheduler.convert import nanoseconds, seconds
from services.scheduler.engine import Engine
from services.scheduler.model import TaskRecord, TaskState
from switchyard.v1 import scheduler_pb2, types_pb2

log = logging.getLogger(__name__)

OUTCOME_STATE = {
    types_pb2.OUTCOME_SUCCEEDED: TaskState.SUCCEEDED,
    types_pb2.OUTCOME_FAILED: TaskState.FAILED,
    types_pb2.OUTCOME_CANCELLED: TaskState.CANCELLED,
    types_pb2.OUTCOME_TIMED_OUT: TaskState.FAILED,
}
RETRYABLE_REASONS = frozenset({"SLOT_CRASHED", "WORKER_LOST", "WORKER_DRAINING", "WORKER_STOPPING"})


def _live_assignment(engine: Engine, worker_id: str, task_id: str, attempt: int) -> TaskRecord | None:
    record = engine.tasks.get(task_id)
    if record is None or record.worker_id != worker_id or record.attempt != attempt:
        return None
    if record.state not in (TaskState.ASSIGNED, TaskState.RUNNING):
        return None
    return record


def task_results(engine: Engine, worker_id: str, results: scheduler_pb2.TaskResults) -> None:
    """One message of started and finished tasks, in that order.

    A task that started and finished within one message goes straight to its end: RUNNING
    would be neither seen nor written, so only its start time is kept."""
    outcomes = results.outcomes
    done = {o.task_id for o in outcomes} if outcomes else ()
    for started in results.started:
        if started.task_id in done:
            _note_start(engine, worker_id, started)
        else:
            task_started(engine, worker_id, started)
    for outcome in outcomes:
        task_finished(engine, worker_id, outcome)


def _note_start(engine: Engine, worker_id: str, started: scheduler_pb2.TaskStarted) -> None:
    record = _live_assignment(engine, worker_id, started.task_id, started.attempt)
    if record is not None and record.state is TaskState.ASSIGNED and record.started_at is None:
        record.started_at = _start_time(engine, started)


def _start_time(engine: Engine, started: scheduler_pb2.TaskStarted) -> float:
    return seconds(started.started_at) if started.HasField("started_at") else engine.clock.now()


def task_started(engine: Engine, worker_id: str, started: scheduler_pb2.TaskStarted) -> None:
    record = _live_assignment(engine, worker_id, started.task_id, started.attempt)
    if record is None or record.state is not TaskState.ASSIGNED:
        return
    engine.move(record, TaskState.RUNNING)
    record.started_at = _start_time(engine, started)
    # Charged in flight from when this scheduler heard of it (its own clock, no skew).
    engine.profiles.started(record.id, record.tenant, engine.clock.now())
    engine.committer.defer([record])


def task_finished(engine: Engine, worker_id: str, outcome: scheduler_pb2.TaskOutcome) -> None:
    link = engine.workers.get(worker_id)
    if link is not None and outcome.task_id in link.slots.running:
        link.slots.running.discard(outcome.task_id)
        engine.workers.adjust(link.slots, +1)
        if outcome.HasField("started_at") and outcome.HasField("finished_at"):
            ran = (nanoseconds(outcome.finished_at) - nanoseconds(outcome.started_at)) / 1e9
            low = engine.config.worker_prefetch_per_slot
            bounds = (low, max(low, engine.config.worker_prefetch_max_per_slot))
            engine.workers.observe_run(link, ran, engine.config.prefetch_window_s, bounds)
        engine.wake.set()
    record = _live_assignment(engine, worker_id, outcome.task_id, outcome.attempt)
    if record is None:
        log.info("late or superseded result discarded", extra={"task_id": outcome.task_id})
        return
    now = engine.clock.now()
    if outcome.HasField("started_at") and record.started_at is None:
        record.started_at = seconds(outcome.started_at)
    state = OUTCOME_STATE.get(outcome.outcome, TaskState.FAILED)
    reason = outcome.error.reason or ("TIMED_OUT" if outcome.outcome == types_pb2.OUTCOME_TIMED_OUT else "")
    if (
        state is TaskState.FAILED
        and reason in RETRYABLE_REASONS
        and record.attempt < engine.config.max_attempts
    ):
        engine.requeue(record)
        return
    if outcome.HasField("result"):
        record.result = outcome.result.SerializeToString(deterministic=True)
    if outcome.HasField("started_at") and outcome.HasField("finished_at"):
        # Both ends from the worker's clock: no skew between machines in the charge.
        ran = (nanoseconds(outcome.finished_at) - nanoseconds(outcome.started_at)) / 1e9
        engine.profiles.charge(record.tenant, max(ran, 0.0), now)
    elif record.started_at is not None:
        engine.profiles.charge(record.tenant, max(now - record.started_at, 0.0), now)
    engine.finish(record, state, reason or None, outcome.error.message or None, now)
