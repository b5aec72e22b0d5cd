"""What a free slot takes from the queue in one pipe message, and the run times that decide it.

A category is short once its runs (the first one, which pays for imports and warm-up, not
counted) are expected to take under `SHORT_TASK_S`. A slot takes one task at a time, or a
batch of short ones: up to `MAX_BATCH` and `BATCH_BUDGET_S` of expected time. What waits
is shared among the free slots (each takes its `share`), except that a batch keeps growing
past its share while it is expected to take under `SPLIT_BUDGET_S`: a pipe message and a
slot process's wake-up, each way, cost more than running so little on the other slot.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from services.worker.model import Assignment, TaskInput
from services.worker.slots import Slot

SHORT_TASK_S = 0.005
BATCH_BUDGET_S = 0.02
SPLIT_BUDGET_S = 0.002
# What a task costs on top of its handler (pickling, the pipe, the reply), in expected time.
TASK_OVERHEAD_S = 0.00003
MAX_BATCH = 64
# Weight of the newest run in a category's expected run time.
RUN_TIME_WEIGHT = 0.2


@dataclass(eq=False)
class Job:
    """An assignment on its way through the pool."""

    assignment: Assignment
    task: TaskInput
    staged: bool = False
    started_at: datetime | None = None
    lane: Lane | None = None
    done: bool = False


@dataclass(eq=False)
class Lane:
    """A slot and the batch it holds: the first job runs, the others wait their turn."""

    slot: Slot
    batch: deque[Job] = field(default_factory=deque)
    deadline: float | None = None
    timer: asyncio.TimerHandle | None = None


class RunTimes:
    """Expected handler run time per category, from its runs after the first."""

    def __init__(self) -> None:
        self._seconds: dict[str, float] = {}
        self._warm: set[str] = set()

    def observe(self, category: str, seconds: float) -> None:
        old = self._seconds.get(category)
        if category not in self._warm:  # a first run pays for imports and warm-up
            self._warm.add(category)
        elif old is None:
            self._seconds[category] = seconds
        else:
            self._seconds[category] = old + (seconds - old) * RUN_TIME_WEIGHT

    def expected(self, category: str) -> float | None:
        """None until a run after the first has been seen."""
        return self._seconds.get(category)


def take_batch(waiting: deque[Job], run_times: RunTimes, share: int) -> list[Job]:
    """Take the head of the queue for one slot: one job, or several short ones. Jobs
    already reported (cancelled while waiting) are dropped on the way."""
    batch: list[Job] = []
    budget = 0.0
    while waiting and len(batch) < MAX_BATCH:
        job = waiting[0]
        if job.done:
            waiting.popleft()
            continue
        expected = run_times.expected(job.task.category)
        if expected is None or expected > SHORT_TASK_S:
            if not batch:  # runs alone
                batch.append(waiting.popleft())
            break
        cost = expected + TASK_OVERHEAD_S
        if batch and (
            budget + cost > BATCH_BUDGET_S or (len(batch) >= share and budget + cost > SPLIT_BUDGET_S)
        ):
            break
        batch.append(waiting.popleft())
        budget += cost
    return batch
