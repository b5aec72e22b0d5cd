"""Results waiting for the scheduler: messages of at most MAX_BATCH outcomes, and started
events sent only when their outcome does not travel with (or after) them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.worker import results
from services.worker.model import Assignment, Outcome, TaskInput, TaskReport
from services.worker.results import PendingResults
from switchyard.v1 import types_pb2

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def assignment(task_id: str) -> Assignment:
    return Assignment(input=TaskInput(task_id=task_id, category="noop"), token=f"tok-{task_id}", timeout_s=1)


def report(task_id: str) -> TaskReport:
    return TaskReport(
        assignment=assignment(task_id),
        outcome=Outcome.SUCCEEDED,
        started_at=T0,
        finished_at=T0 + timedelta(seconds=1),
    )


def test_a_started_event_travels_alone_only_without_its_outcome() -> None:
    pending = PendingResults()
    assert not pending
    pending.started(assignment("a"), T0)
    pending.started(assignment("b"), T0)
    pending.finished(report("a"))
    message = pending.take()
    assert [s.task_id for s in message.results.started] == ["b"]
    assert [(o.task_id, o.assignment_token) for o in message.results.outcomes] == [("a", "tok-a")]
    assert message.results.outcomes[0].started_at.ToDatetime(tzinfo=UTC) == T0
    assert not pending


def test_outcomes_go_in_messages_of_max_batch_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(results, "MAX_BATCH", 2)
    pending = PendingResults()
    for task_id in "abcde":
        pending.started(assignment(task_id), T0)
    for task_id in "abc":
        pending.finished(report(task_id))
    assert pending.full
    first = pending.take()
    assert [o.task_id for o in first.results.outcomes] == ["a", "b"]
    # c's outcome goes in the next message, with its started_at; d and e go now.
    assert [s.task_id for s in first.results.started] == ["d", "e"]
    assert not pending.full
    second = pending.take()
    assert [o.task_id for o in second.results.outcomes] == ["c"] and not second.results.started
    assert not pending


def test_started_events_alone_go_max_batch_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(results, "MAX_BATCH", 2)
    pending = PendingResults()
    for task_id in "abc":
        pending.started(assignment(task_id), T0)
    assert pending.full
    message = pending.take()
    assert [s.task_id for s in message.results.started] == ["a", "b"] and message.HasField("results")
    assert [s.task_id for s in pending.take().results.started] == ["c"]
    assert not pending


def test_clear_forgets_everything() -> None:
    pending = PendingResults()
    pending.started(assignment("a"), T0)
    pending.finished(report("b"))
    pending.clear()
    assert not pending


class Unencodable:
    def __float__(self) -> float:
        raise RuntimeError("no number here")


def test_an_outcome_that_cannot_be_encoded_goes_as_a_failure_never_half_built() -> None:
    from services.worker.model import HandlerResult

    pending = PendingResults()
    good = report("a")
    huge = TaskReport(**{**vars(report("b")), "result": HandlerResult(summary={"n": 10**400})})
    bad = TaskReport(**{**vars(report("c")), "result": HandlerResult(summary={"x": Unencodable()})})
    for r in (good, huge, bad):
        pending.finished(r)
    outcomes = {o.task_id: o for o in pending.take().results.outcomes}
    assert list(outcomes) == ["a", "b", "c"]
    assert outcomes["b"].outcome == types_pb2.OUTCOME_SUCCEEDED
    assert outcomes["b"].result.summary.fields["n"].WhichOneof("kind") == "null_value"
    assert outcomes["c"].outcome == types_pb2.OUTCOME_FAILED
    assert outcomes["c"].error.reason == "HANDLER_ERROR"
    assert "could not be encoded" in outcomes["c"].error.message
    assert not outcomes["c"].HasField("result")
