"""The async Python client of Switchyard.

    async with Client("127.0.0.1:50051", token) as client:
        submitted = await client.submit([specs.inference("mlp")])
        done = await client.wait(submitted, timeout=60)

Every method raises `SwitchyardError` on failure. Messages are the generated protobuf
types of `switchyard.v1`; this module adds the bearer token, timeouts, paging and waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

from switchyard.errors import SwitchyardError
from switchyard.specs import TERMINAL_STATES, parse_task_state
from switchyard.v1 import classifier_pb2, classifier_pb2_grpc, types_pb2

DEFAULT_ADDRESS = "127.0.0.1:50051"
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 32 * 1024 * 1024),
    ("grpc.max_send_message_length", 32 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
]
# Ids per GetTasks/WatchTasks request when waiting on many tasks.
ID_CHUNK = 500
T = TypeVar("T")


@dataclass(frozen=True)
class SubmitResult:
    """What SubmitTasks returned: the job that holds the tasks, and the tasks as created."""

    job_id: str
    tasks: list[types_pb2.Task]

    @property
    def task_ids(self) -> list[str]:
        return [t.id for t in self.tasks]


def _chunks(ids: Sequence[str]) -> list[Sequence[str]]:
    return [ids[i : i + ID_CHUNK] for i in range(0, len(ids), ID_CHUNK)] or [[]]


class Client:
    """A connection to the classifier (the front door) on behalf of one tenant user."""

    def __init__(self, address: str = DEFAULT_ADDRESS, token: str | None = None, *, timeout: float = 30.0):
        self.address = address
        self.timeout = timeout
        # The bearer token goes as metadata on each call: a client interceptor would cost an
        # extra asyncio task and call wrapper per RPC.
        self._metadata: tuple[tuple[str, str], ...] = (("authorization", f"Bearer {token}"),) if token else ()
        self._channel = grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
        self._stub = classifier_pb2_grpc.ClassifierServiceStub(self._channel)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    def _opts(self) -> dict[str, Any]:
        return {"timeout": self.timeout, "metadata": self._metadata}

    async def _call(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except grpc.aio.AioRpcError as exc:
            raise SwitchyardError.from_rpc_error(exc) from None

    async def _stream(self, call: Any) -> AsyncIterator[Any]:
        try:
            async for response in call:
                yield response
        except grpc.aio.AioRpcError as exc:
            raise SwitchyardError.from_rpc_error(exc) from None
        finally:
            call.cancel()

    async def submit(
        self, specs: Iterable[types_pb2.TaskSpec] = (), *, split: types_pb2.SplitRequest | None = None
    ) -> SubmitResult:
        """Submit tasks (and optionally one split request) as one job; durable on return."""
        request = classifier_pb2.SubmitTasksRequest(tasks=list(specs), split=split)
        return await self.submit_request(request)

    async def submit_request(self, request: classifier_pb2.SubmitTasksRequest) -> SubmitResult:
        response = await self._call(self._stub.SubmitTasks(request, **self._opts()))
        return SubmitResult(response.job_id, list(response.tasks))

    async def classify(self, specs: Iterable[types_pb2.TaskSpec]) -> list[classifier_pb2.Classification]:
        """What category, eligibility group and priority class each spec would get (dry run)."""
        request = classifier_pb2.ClassifyTasksRequest(tasks=list(specs))
        response = await self._call(self._stub.ClassifyTasks(request, **self._opts()))
        return list(response.classifications)

    async def get_tasks(self, ids: Sequence[str]) -> list[types_pb2.Task]:
        tasks: list[types_pb2.Task] = []
        for chunk in _chunks(ids):
            request = classifier_pb2.GetTasksRequest(task_ids=list(chunk))
            response = await self._call(self._stub.GetTasks(request, **self._opts()))
            tasks.extend(response.tasks)
        return tasks

    async def get_task(self, task_id: str) -> types_pb2.Task:
        tasks = await self.get_tasks([task_id])
        if not tasks:
            raise SwitchyardError("NOT_FOUND", f"task {task_id!r} not found", reason="TASK_NOT_FOUND")
        return tasks[0]

    async def list_tasks(
        self, *, job_id: str = "", states: Iterable[str | int] = (), page_size: int = 100
    ) -> AsyncIterator[types_pb2.Task]:
        """Every task of the caller's tenant that matches, fetching page after page."""
        request = classifier_pb2.ListTasksRequest(
            job_id=job_id, states=[parse_task_state(s) for s in states], page_size=page_size
        )
        while True:
            response = await self._call(self._stub.ListTasks(request, **self._opts()))
            for task in response.tasks:
                yield task
            if not response.next_page_token:
                return
            request.page_token = response.next_page_token

    async def watch_tasks(self, ids: Sequence[str]) -> AsyncIterator[types_pb2.Task]:
        """Each change of the given tasks, as the server reports it, until the stream ends."""
        call = self._stub.WatchTasks(
            classifier_pb2.WatchTasksRequest(task_ids=list(ids)), metadata=self._metadata
        )
        async for response in self._stream(call):
            for task in response.tasks:
                yield task

    async def wait(
        self,
        ids: Sequence[str] | SubmitResult,
        *,
        timeout: float | None = None,
        poll_interval: float = 2.0,
        on_update: Callable[[types_pb2.Task], None] | None = None,
    ) -> list[types_pb2.Task]:
        """Wait until every task is terminal; return them in the order of `ids`.

        Given a `SubmitResult`, its tasks count as the first copies seen: a task that
        finished before the submit answered is not asked for again.
        Follows WatchTasks for prompt updates and polls GetTasks as a safety net, so a
        dropped stream or a change missed between calls never leaves it hanging.
        `on_update` sees every copy of a task that arrives (repeats included).
        Raises SwitchyardError(DEADLINE_EXCEEDED, reason WAIT_TIMEOUT) after `timeout` s.
        """
        known: list[types_pb2.Task] = []
        if isinstance(ids, SubmitResult):
            known, ids = ids.tasks, ids.task_ids
        waiter = _Waiter(self, list(dict.fromkeys(ids)), poll_interval, on_update)
        waiter.seed(known)
        try:
            return await asyncio.wait_for(waiter.run(), timeout)
        except TimeoutError:
            left = waiter.unfinished()
            raise SwitchyardError(
                "DEADLINE_EXCEEDED",
                f"{len(left)} of {len(waiter.ids)} tasks not finished after {timeout}s",
                reason="WAIT_TIMEOUT",
                metadata={"unfinished": ",".join(left[:20])},
            ) from None

    async def get_job(self, job_id: str) -> types_pb2.Job:
        request = classifier_pb2.GetJobRequest(job_id=job_id)
        response = await self._call(self._stub.GetJob(request, **self._opts()))
        return response.job

    async def watch_job(self, job_id: str) -> AsyncIterator[types_pb2.Job]:
        """The job each time its progress changes, until the stream ends."""
        call = self._stub.WatchJob(classifier_pb2.WatchJobRequest(job_id=job_id), metadata=self._metadata)
        async for response in self._stream(call):
            yield response.job

    async def cancel(self, *, ids: Sequence[str] = (), job_id: str = "") -> list[types_pb2.Task]:
        """Cancel the given tasks, or every unfinished task of a job; returns the tasks."""
        request = classifier_pb2.CancelTasksRequest(task_ids=list(ids), job_id=job_id)
        response = await self._call(self._stub.CancelTasks(request, **self._opts()))
        return list(response.tasks)

    async def explain(self, task_id: str) -> types_pb2.Explanation:
        """Why a task has its priority and what it is waiting for."""
        request = classifier_pb2.ExplainTaskRequest(task_id=task_id)
        response = await self._call(self._stub.ExplainTask(request, **self._opts()))
        return response.explanation


class _Waiter:
    """State of one `Client.wait`: the latest copy of each task, fed by watch and poll."""

    def __init__(
        self,
        client: Client,
        ids: list[str],
        poll_interval: float,
        on_update: Callable[[types_pb2.Task], None] | None,
    ) -> None:
        self.client = client
        self.on_update = on_update
        self.ids = ids
        self.poll_interval = poll_interval
        self.latest: dict[str, types_pb2.Task] = {}
        self.remaining = set(ids)
        self.changed = asyncio.Event()
        self.failed: SwitchyardError | None = None

    def unfinished(self) -> list[str]:
        return [i for i in self.ids if i in self.remaining]

    def seed(self, tasks: Sequence[types_pb2.Task]) -> None:
        """Copies already in hand (a submit's answer), before anything is asked."""
        if tasks:
            self._update(tasks)

    def _update(self, tasks: Iterable[types_pb2.Task]) -> None:
        for task in tasks:
            self.latest[task.id] = task
            if task.state in TERMINAL_STATES:
                self.remaining.discard(task.id)
            if self.on_update is not None:
                self.on_update(task)
        self.changed.set()

    async def _follow(self) -> None:
        """Feed from WatchTasks, one stream per ID_CHUNK ids (a request names at most as many
        ids as a submit may hold); each stream's first message is the current state."""
        await asyncio.gather(*(self._follow_chunk(chunk) for chunk in _chunks(self.unfinished())))

    async def _follow_chunk(self, ids: Sequence[str]) -> None:
        """Reopen a stream that ends; polling alone covers the rest. An error that a retry
        cannot mend (an unknown task, a bad request) ends the wait with that error."""
        while left := [i for i in ids if i in self.remaining]:
            started = time.monotonic()
            try:
                async for task in self.client.watch_tasks(left):
                    self._update([task])
            except SwitchyardError as exc:
                if not exc.retryable:
                    self.failed = exc
                    self.changed.set()
                    return
            await asyncio.sleep(max(0.0, self.poll_interval - (time.monotonic() - started)))

    async def _changed_or_timeout(self) -> bool:
        waiting = asyncio.create_task(self.changed.wait())
        done, _ = await asyncio.wait({waiting}, timeout=self.poll_interval)
        waiting.cancel()
        return bool(done)

    async def run(self) -> list[types_pb2.Task]:
        if not self.remaining:  # all seeded terminal: nothing to ask
            return [self.latest[i] for i in self.ids]
        # The watch answers with the current state first, so no GetTasks before it: one
        # round trip less for a task that finishes at once.
        follower = asyncio.create_task(self._follow())
        try:
            while True:
                self.changed.clear()
                if self.failed is not None:
                    raise self.failed
                if not self.remaining:
                    return [self.latest[i] for i in self.ids]
                if not await self._changed_or_timeout():
                    self._update(await self.client.get_tasks(self.unfinished()))
        finally:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
