"""WatchJob: follow the scheduler's task stream of a job and emit the job when it changes.

Every event on the scheduler's `WatchTasks(job_id)` stream triggers a `GetJob`; the job is
emitted when it differs from the last one sent, and the stream ends once the job is
terminal. A slow poll covers the gap between subscribing and the first read, and a stream
that ends early.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any

from switchyard.v1 import types_pb2

TERMINAL_JOB_STATES = frozenset(
    {types_pb2.JOB_STATE_SUCCEEDED, types_pb2.JOB_STATE_FAILED, types_pb2.JOB_STATE_CANCELLED}
)
DEFAULT_POLL_S = 5.0

GetJob = Callable[[], Awaitable[types_pb2.Job]]


async def follow_job(
    watch: AsyncIterable[Any], get_job: GetJob, *, poll_s: float = DEFAULT_POLL_S
) -> AsyncIterator[types_pb2.Job]:
    """Yield the job now and after every change until it is terminal.

    Errors of the watch stream and of `get_job` propagate to the caller.
    """
    changed = asyncio.Event()
    pump = asyncio.create_task(_pump(watch, changed))
    last: types_pb2.Job | None = None
    try:
        while True:
            changed.clear()
            job = await get_job()
            if job != last:
                last = job
                yield job
            if job.state in TERMINAL_JOB_STATES:
                return
            if pump.done():
                pump.result()  # raises the watch stream's error, if any
                await asyncio.sleep(poll_s)  # the stream ended: poll until terminal
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_either(changed, pump), poll_s)
    finally:
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await pump


async def _pump(watch: AsyncIterable[Any], changed: asyncio.Event) -> None:
    async for _update in watch:
        changed.set()


async def _either(changed: asyncio.Event, pump: asyncio.Task[None]) -> None:
    """Wait for a change or for the watch stream to end (with or without an error)."""
    waiter = asyncio.create_task(changed.wait())
    try:
        await asyncio.wait({waiter, pump}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
