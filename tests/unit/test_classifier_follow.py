"""WatchJob's follower: emits the job on change, ends when terminal, polls when the stream is quiet."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from services.classifier.follow import follow_job
from switchyard.v1 import types_pb2

ACTIVE, DONE = types_pb2.JOB_STATE_ACTIVE, types_pb2.JOB_STATE_SUCCEEDED


def job(state: types_pb2.JobState.ValueType, done: int) -> types_pb2.Job:
    return types_pb2.Job(id="job_1", state=state, progress=types_pb2.JobProgress(total=2, done=done))


class Scripted:
    """A job that changes at each watch event; `events` feeds the watch stream."""

    def __init__(self, jobs: list[types_pb2.Job]) -> None:
        self.jobs = jobs
        self.index = 0
        self.events: asyncio.Queue[object] = asyncio.Queue()

    async def get_job(self) -> types_pb2.Job:
        return self.jobs[min(self.index, len(self.jobs) - 1)]

    async def watch(self) -> AsyncIterator[object]:
        while True:
            item = await self.events.get()
            if isinstance(item, Exception):
                raise item
            if item is None:
                return
            yield item

    async def change(self) -> None:
        self.index += 1
        await self.events.put("update")


async def test_emits_changes_and_ends_when_terminal() -> None:
    script = Scripted([job(ACTIVE, 0), job(ACTIVE, 1), job(DONE, 2)])
    seen: list[types_pb2.Job] = []

    async def consume() -> None:
        async for item in follow_job(script.watch(), script.get_job, poll_s=30):
            seen.append(item)
            if len(seen) < 3:
                await script.change()

    await asyncio.wait_for(consume(), 10)
    assert [(j.state, j.progress.done) for j in seen] == [(ACTIVE, 0), (ACTIVE, 1), (DONE, 2)]


async def test_unchanged_jobs_are_not_repeated_and_a_quiet_stream_is_polled() -> None:
    script = Scripted([job(ACTIVE, 0), job(ACTIVE, 0), job(DONE, 2)])
    seen: list[types_pb2.Job] = []

    async def consume() -> None:
        async for item in follow_job(script.watch(), script.get_job, poll_s=0.05):
            seen.append(item)
            script.index = 2  # changes without a watch event: the poll finds it

    await asyncio.wait_for(consume(), 10)
    assert [j.state for j in seen] == [ACTIVE, DONE]


async def test_watch_errors_propagate() -> None:
    script = Scripted([job(ACTIVE, 0)])
    await script.events.put(RuntimeError("stream broke"))
    with pytest.raises(RuntimeError, match="stream broke"):
        async for _ in follow_job(script.watch(), script.get_job, poll_s=30):
            pass
