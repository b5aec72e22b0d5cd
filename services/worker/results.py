"""Started events and outcomes waiting to be written to the scheduler, as the messages
they will travel in.

Outcomes are converted straight into the request that carries them (no copy of a proto
per outcome per message); started events stay plain until written, and one whose
outcome waits too is never sent: the outcome carries started_at.
"""

from __future__ import annotations

import logging
from datetime import datetime

from services.worker.convert import outcome_into, started_into
from services.worker.model import Assignment, Outcome, Reason, TaskFailure, TaskReport
from switchyard.v1 import scheduler_pb2

log = logging.getLogger(__name__)
MAX_BATCH = 500


class PendingResults:
    """What waits to be written, at most MAX_BATCH outcomes and started events a message."""

    def __init__(self) -> None:
        self._started: list[tuple[Assignment, datetime]] = []
        # Requests holding outcomes, the last one still filling, and the ids in each.
        self._requests: list[tuple[scheduler_pb2.ConnectWorkerRequest, set[str]]] = []

    def __bool__(self) -> bool:
        return bool(self._started or self._requests)

    @property
    def full(self) -> bool:
        """Whether a message's worth waits (write again at once)."""
        outcomes = sum(len(ids) for _, ids in self._requests)
        return outcomes >= MAX_BATCH or len(self._started) - outcomes >= MAX_BATCH

    def started(self, assignment: Assignment, started_at: datetime) -> None:
        self._started.append((assignment, started_at))

    def finished(self, report: TaskReport) -> None:
        if not self._requests or len(self._requests[-1][1]) >= MAX_BATCH:
            self._requests.append((scheduler_pb2.ConnectWorkerRequest(), set()))
        request, ids = self._requests[-1]
        outcomes = request.results.outcomes
        try:
            outcome_into(outcomes.add(), report)
        except Exception as exc:  # never send a half-built outcome: fail the task instead
            del outcomes[-1]
            log.exception("outcome not convertible", extra={"task_id": report.assignment.task_id})
            failure = TaskFailure(Reason.HANDLER_ERROR, f"the result could not be encoded: {exc!r}")
            plain = TaskReport(
                assignment=report.assignment,
                outcome=Outcome.FAILED,
                finished_at=report.finished_at,
                started_at=report.started_at,
                failure=failure,
            )
            outcome_into(outcomes.add(), plain)
        ids.add(report.assignment.task_id)

    def take(self) -> scheduler_pb2.ConnectWorkerRequest:
        """The next message: the oldest outcomes, and the started events whose outcome
        does not wait."""
        request, ids = (
            self._requests.pop(0) if self._requests else (scheduler_pb2.ConnectWorkerRequest(), set())
        )
        later: set[str] = set().union(*(other for _, other in self._requests))
        started = request.results.started
        keep: list[tuple[Assignment, datetime]] = []
        for assignment, at in self._started:
            task_id = assignment.task_id
            if task_id in ids:
                continue
            if task_id in later or len(started) >= MAX_BATCH:
                keep.append((assignment, at))
            else:
                started_into(started.add(), assignment, at)
        self._started = keep
        request.results.SetInParent()
        return request

    def clear(self) -> None:
        self._started.clear()
        self._requests.clear()
