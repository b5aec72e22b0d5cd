"""The slot pool's batches against a real slot process: short tasks travel several to a
pipe message, and a crash, a time limit or a cancel in the middle of a batch ends the
running task alone, once, while the tasks that had not started run on the replaced slot.

One pool with one slot serves the module (starting a slot imports torch). Each test uses
its own category, so run times measured in one test do not decide batching in another.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
import pytest_asyncio
from prometheus_client import REGISTRY

from common.ids import new_id
from services.worker.handlers.context import HandlerContext
from services.worker.model import Assignment, HandlerResult, Outcome, TaskInput, TaskReport
from services.worker.pool import SlotPool
from tests.helpers import assert_eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")

HERE = "tests.integration.test_worker_pool"
CATEGORIES = ("t_batch", "t_crash", "t_limit", "t_timeout", "t_cancel", "t_pending")


def quick_handler(task: TaskInput, ctx: HandlerContext) -> HandlerResult:
    """Returns at once, unless told to exit the process or to sleep first."""
    if task.parameters.get("crash"):
        os._exit(3)
    time.sleep(float(task.parameters.get("seconds", 0)))
    return HandlerResult(summary={"task": task.task_id})


@dataclass
class Pool:
    pool: SlotPool
    started: list[str] = field(default_factory=list)
    reports: list[TaskReport] = field(default_factory=list)

    def submit(self, category: str, *, timeout_s: float = 0, **params: Any) -> str:
        task = TaskInput(task_id=new_id("task"), category=category, parameters=params)
        assert self.pool.submit(Assignment(input=task, token="tok", timeout_s=timeout_s))
        return task.task_id

    def report(self, task_id: str) -> TaskReport | None:
        return next((r for r in self.reports if r.assignment.task_id == task_id), None)

    async def outcomes(self, *task_ids: str) -> list[Outcome]:
        """Once every one has its report and the slot is idle again: their outcomes, after
        checking that no task was reported twice."""
        await assert_eventually(
            lambda: (
                all(self.report(t) for t in task_ids)
                and self.pool.free_slots() == self.pool.size
                and not self.pool.running_task_ids()
            ),
            timeout=60,
            msg="reports",
        )
        counts = Counter(r.assignment.task_id for r in self.reports)
        assert all(counts[t] == 1 for t in task_ids), counts
        return [report.outcome for t in task_ids if (report := self.report(t))]

    async def warm(self, category: str) -> None:
        """Tasks of the category one after another, so the pool knows it is short (a
        category's first run, which pays for imports and warm-up, does not count)."""
        for _ in range(2):
            task_id = self.submit(category)
            assert await self.outcomes(task_id) == [Outcome.SUCCEEDED]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Pool]:
    holder: list[Pool] = []

    def started(assignment: Assignment, at: datetime) -> None:
        holder[0].started.append(assignment.task_id)

    def finished(report: TaskReport) -> None:
        holder[0].reports.append(report)

    slot_pool = SlotPool(
        slots=1,
        device="cpu",
        artifact_dir=str(tmp_path_factory.mktemp("artifacts")),
        extra_handlers=tuple(f"{c}={HERE}:quick_handler" for c in CATEGORIES),
        on_started=started,
        on_finished=finished,
    )
    holder.append(Pool(slot_pool))
    await slot_pool.start()
    yield holder[0]
    await slot_pool.stop()


def finished_count(category: str, outcome: str) -> float:
    labels = {"category": category, "outcome": outcome}
    return REGISTRY.get_sample_value("switchyard_worker_tasks_total", labels) or 0.0


async def test_short_tasks_share_one_message(pool: Pool) -> None:
    await pool.warm("t_batch")
    batches, counted = pool.pool.batches, finished_count("t_batch", "succeeded")
    ids = [pool.submit("t_batch") for _ in range(6)]
    assert await pool.outcomes(*ids) == [Outcome.SUCCEEDED] * 6
    assert pool.pool.batches == batches + 1
    assert pool.started[-6:] == ids
    assert finished_count("t_batch", "succeeded") == counted + 6  # counted once the pool is idle


async def test_a_crash_mid_batch_fails_the_running_task_and_runs_the_rest(pool: Pool) -> None:
    await pool.warm("t_crash")
    pids, batches = pool.pool.slot_pids(), pool.pool.batches
    ids = [pool.submit("t_crash"), pool.submit("t_crash"), pool.submit("t_crash", crash=True)]
    ids += [pool.submit("t_crash"), pool.submit("t_crash")]
    outcomes = await pool.outcomes(*ids)
    assert outcomes == [Outcome.SUCCEEDED] * 2 + [Outcome.FAILED] + [Outcome.SUCCEEDED] * 2
    crashed = pool.report(ids[2])
    assert crashed is not None and crashed.failure is not None
    assert crashed.failure.reason == "SLOT_CRASHED"
    assert pool.pool.slot_pids() != pids
    assert pool.pool.batches == batches + 2  # the batch, then what it had not started


async def test_time_limits_are_per_task_within_a_batch(pool: Pool) -> None:
    await pool.warm("t_limit")
    batches = pool.pool.batches
    ids = [pool.submit("t_limit", timeout_s=2.0, seconds=1.0) for _ in range(3)]
    assert await pool.outcomes(*ids) == [Outcome.SUCCEEDED] * 3  # 3 s in all, 1 s each
    assert pool.pool.batches == batches + 1


async def test_a_timeout_mid_batch_stops_that_task_alone(pool: Pool) -> None:
    await pool.warm("t_timeout")
    pids = pool.pool.slot_pids()
    ids = [
        pool.submit("t_timeout", timeout_s=30),
        pool.submit("t_timeout", timeout_s=0.5, seconds=60),
        pool.submit("t_timeout", timeout_s=30),
    ]
    outcomes = await pool.outcomes(*ids)
    assert outcomes == [Outcome.SUCCEEDED, Outcome.TIMED_OUT, Outcome.SUCCEEDED]
    assert pool.pool.slot_pids() != pids


async def test_cancel_reaches_the_running_task_of_a_batch(pool: Pool) -> None:
    await pool.warm("t_cancel")
    ids = [pool.submit("t_cancel", seconds=60), pool.submit("t_cancel"), pool.submit("t_cancel")]
    await assert_eventually(lambda: ids[0] in pool.started, msg="started")
    assert pool.pool.cancel([ids[0]]) == [ids[0]]
    outcomes = await pool.outcomes(*ids)
    assert outcomes == [Outcome.CANCELLED, Outcome.SUCCEEDED, Outcome.SUCCEEDED]


async def test_a_task_cancelled_before_its_turn_is_reported_once(pool: Pool) -> None:
    await pool.warm("t_pending")
    batches, pids = pool.pool.batches, pool.pool.slot_pids()
    ids = [pool.submit("t_pending", seconds=1.0), pool.submit("t_pending"), pool.submit("t_pending")]
    await assert_eventually(lambda: ids[0] in pool.started, msg="started")
    assert pool.pool.cancel([ids[1]]) == [ids[1]]
    assert pool.report(ids[1]) is not None  # at once, not when its turn comes
    outcomes = await pool.outcomes(*ids)
    assert outcomes == [Outcome.SUCCEEDED, Outcome.CANCELLED, Outcome.SUCCEEDED]
    assert ids[1] not in pool.started
    assert pool.pool.batches == batches + 1 and pool.pool.slot_pids() == pids


async def test_cancelling_a_whole_batch_reports_each_task_once(pool: Pool) -> None:
    await pool.warm("t_cancel")
    ids = [pool.submit("t_cancel", seconds=60), pool.submit("t_cancel"), pool.submit("t_cancel")]
    await assert_eventually(lambda: ids[0] in pool.started, msg="started")
    assert sorted(pool.pool.cancel_all("WORKER_STOPPING")) == sorted(ids)
    assert await pool.outcomes(*ids) == [Outcome.CANCELLED] * 3
    assert all((r := pool.report(t)) and r.failure and r.failure.reason == "WORKER_STOPPING" for t in ids)


async def test_a_slot_that_dies_idle_is_replaced(pool: Pool) -> None:
    (pid,) = pool.pool.slot_pids()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    await assert_eventually(
        lambda: pool.pool.slot_pids() != (pid,) and pool.pool.free_slots() == 1, timeout=60, msg="replaced"
    )
    task_id = pool.submit("t_batch")
    assert await pool.outcomes(task_id) == [Outcome.SUCCEEDED]
