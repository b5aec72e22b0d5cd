"""Which waiting tasks a free slot takes at once, from the run times seen so far."""

from __future__ import annotations

from collections import deque

import pytest

from services.worker.batches import (
    BATCH_BUDGET_S,
    MAX_BATCH,
    SPLIT_BUDGET_S,
    TASK_OVERHEAD_S,
    Job,
    RunTimes,
    take_batch,
)
from services.worker.model import Assignment, TaskInput


def jobs(category: str, n: int) -> deque[Job]:
    out: deque[Job] = deque()
    for i in range(n):
        task = TaskInput(task_id=f"{category}-{i}", category=category)
        out.append(Job(Assignment(input=task, token="tok", timeout_s=1.0), task))
    return out


def run_times(**seconds: float) -> RunTimes:
    """Run times as if each category had run twice (the first run does not count)."""
    times = RunTimes()
    for category, value in seconds.items():
        times.observe(category, 10.0)
        times.observe(category, value)
    return times


def test_the_first_run_of_a_category_does_not_count() -> None:
    times = RunTimes()
    times.observe("c", 5.0)
    assert times.expected("c") is None
    times.observe("c", 1.0)
    assert times.expected("c") == 1.0
    times.observe("c", 2.0)
    assert 1.0 < (times.expected("c") or 0) < 2.0


@pytest.mark.parametrize("times", [RunTimes(), run_times(c=1.0)], ids=["unknown", "long"])
def test_unknown_and_long_tasks_go_one_at_a_time(times: RunTimes) -> None:
    waiting = jobs("c", 3)
    assert [j.task.task_id for j in take_batch(waiting, times, share=3)] == ["c-0"]
    assert len(waiting) == 2


def test_tiny_tasks_go_together_past_their_fair_share() -> None:
    waiting = jobs("c", 30)
    batch = take_batch(waiting, run_times(c=0.00001), share=10)
    assert [j.task.task_id for j in batch] == [f"c-{i}" for i in range(30)]
    assert not waiting


def test_short_tasks_worth_running_apart_are_shared_among_free_slots() -> None:
    per_task = SPLIT_BUDGET_S / 2
    waiting = jobs("c", 8)
    batch = take_batch(waiting, run_times(c=per_task), share=4)
    assert len(batch) == 4 and len(waiting) == 4


def test_a_batch_stops_at_its_budget_and_at_max_batch() -> None:
    per_task = 0.004
    waiting = jobs("c", 20)
    expected = int(BATCH_BUDGET_S // (per_task + TASK_OVERHEAD_S))
    assert len(take_batch(waiting, run_times(c=per_task), share=20)) == expected
    waiting = jobs("d", MAX_BATCH + 5)
    assert len(take_batch(waiting, run_times(d=0.00001), share=MAX_BATCH + 5)) == MAX_BATCH


def test_a_batch_ends_before_a_task_that_is_not_short() -> None:
    waiting = jobs("short", 2) + jobs("long", 1) + jobs("short", 1)
    times = run_times(short=0.00001, long=1.0)
    assert [j.task.category for j in take_batch(waiting, times, share=4)] == ["short", "short"]
    assert [j.task.category for j in take_batch(waiting, times, share=4)] == ["long"]


def test_jobs_reported_while_waiting_are_dropped() -> None:
    waiting = jobs("c", 4)
    waiting[0].done = waiting[2].done = True
    batch = take_batch(waiting, run_times(c=0.00001), share=4)
    assert [j.task.task_id for j in batch] == ["c-1", "c-3"] and not waiting
