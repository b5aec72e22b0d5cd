"""Client against an in-process fake classifier: submit, paging, waiting through watch and poll."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from switchyard import Client, SwitchyardError, inference, split, task
from switchyard.v1 import classifier_pb2, classifier_pb2_grpc, types_pb2

SUCCEEDED = types_pb2.TASK_STATE_SUCCEEDED


class FakeClassifier(classifier_pb2_grpc.ClassifierServiceServicer):
    """Tasks finish `finish_after` GetTasks calls after submit; watch streams end early."""

    def __init__(self, *, watch_sends: bool = True) -> None:
        self.tasks: dict[str, types_pb2.Task] = {}
        self.watch_sends = watch_sends
        # Specs with this category finish before the submit answers.
        self.instant_category = ""
        self.tokens: list[str | None] = []
        self.get_calls = 0
        self.watched: list[int] = []

    async def SubmitTasks(self, request: Any, context: Any) -> classifier_pb2.SubmitTasksResponse:
        self.tokens.append(dict(context.invocation_metadata()).get("authorization"))
        specs = list(request.tasks)
        if request.HasField("split"):
            n = -(-request.split.total_items // request.split.batch_size)
            specs += [request.split.template] * n
        out = []
        for spec in specs:
            state = SUCCEEDED if spec.category == self.instant_category else types_pb2.TASK_STATE_QUEUED
            t = types_pb2.Task(id=f"task_{len(self.tasks)}", job_id="job_1", spec=spec, state=state)
            self.tasks[t.id] = t
            out.append(t)
        return classifier_pb2.SubmitTasksResponse(job_id="job_1", tasks=out)

    async def GetTasks(self, request: Any, context: Any) -> classifier_pb2.GetTasksResponse:
        self.get_calls += 1
        return classifier_pb2.GetTasksResponse(tasks=[self.tasks[i] for i in request.task_ids])

    async def ListTasks(self, request: Any, context: Any) -> classifier_pb2.ListTasksResponse:
        ids = sorted(self.tasks)
        start = int(request.page_token or 0)
        page = ids[start : start + request.page_size]
        token = str(start + request.page_size) if start + request.page_size < len(ids) else ""
        return classifier_pb2.ListTasksResponse(tasks=[self.tasks[i] for i in page], next_page_token=token)

    async def WatchTasks(
        self, request: Any, context: Any
    ) -> AsyncIterator[classifier_pb2.WatchTasksResponse]:
        self.watched.append(len(request.task_ids))
        self.tokens.append(dict(context.invocation_metadata()).get("authorization"))
        if self.watch_sends:
            yield classifier_pb2.WatchTasksResponse(tasks=[self.tasks[request.task_ids[0]]])

    def finish(self, *ids: str) -> None:
        for i in ids:
            self.tasks[i].state = SUCCEEDED
            self.tasks[i].worker_id = "cpu-1"


@pytest.fixture
async def fake() -> AsyncIterator[tuple[str, FakeClassifier]]:
    servicer = FakeClassifier()  # type: ignore[abstract]
    srv = grpc.aio.server()
    classifier_pb2_grpc.add_ClassifierServiceServicer_to_server(servicer, srv)
    port = srv.add_insecure_port("127.0.0.1:0")
    await srv.start()
    yield f"127.0.0.1:{port}", servicer
    await srv.stop(None)


async def test_submit_with_split(fake: tuple[str, FakeClassifier]) -> None:
    address, _ = fake
    async with Client(address, "t") as client:
        result = await client.submit(
            [inference("mlp")], split=split(task("create_synthetic_data"), total_items=24, batch_size=8)
        )
    assert result.job_id == "job_1"
    assert len(result.task_ids) == 4
    assert [t.spec.category for t in result.tasks] == ["inference"] + ["create_synthetic_data"] * 3


async def test_every_call_carries_the_bearer_token_and_none_without_one(
    fake: tuple[str, FakeClassifier],
) -> None:
    address, servicer = fake
    async with Client(address, "secret-1") as client:
        ids = (await client.submit([task("noop")])).task_ids
        servicer.finish(*ids)
        await client.wait(ids, timeout=10, poll_interval=0.05)
    async with Client(address) as anonymous:
        await anonymous.submit([task("noop")])
    assert servicer.tokens == ["Bearer secret-1", "Bearer secret-1", None]


async def test_list_tasks_follows_pages(fake: tuple[str, FakeClassifier]) -> None:
    address, _ = fake
    async with Client(address, "t") as client:
        await client.submit([task("noop")] * 7)
        listed = [t.id async for t in client.list_tasks(page_size=3)]
    assert listed == sorted(f"task_{i}" for i in range(7))


async def test_wait_returns_in_order_once_all_terminal(fake: tuple[str, FakeClassifier]) -> None:
    address, servicer = fake
    async with Client(address, "t") as client:
        ids = (await client.submit([task("noop")] * 3)).task_ids
        seen: list[str] = []

        async def finish_later() -> None:
            await asyncio.sleep(0.2)
            servicer.finish(*reversed(ids))

        finisher = asyncio.create_task(finish_later())
        done = await client.wait(ids, timeout=10, poll_interval=0.05, on_update=lambda t: seen.append(t.id))
        await finisher
    assert [t.id for t in done] == ids
    assert all(t.state == SUCCEEDED for t in done)
    assert set(seen) == set(ids)


async def test_wait_on_more_ids_than_a_request_holds_watches_in_chunks(
    fake: tuple[str, FakeClassifier],
) -> None:
    from switchyard.client import ID_CHUNK

    address, servicer = fake
    async with Client(address, "t") as client:
        ids = (await client.submit([task("noop")] * (2 * ID_CHUNK + 1))).task_ids
        servicer.finish(*ids)
        done = await client.wait(ids, timeout=10, poll_interval=0.05)
    assert [t.id for t in done] == ids and all(t.state == SUCCEEDED for t in done)
    assert servicer.watched and max(servicer.watched) <= ID_CHUNK


async def test_wait_on_a_submit_result_asks_only_for_what_it_did_not_finish(
    fake: tuple[str, FakeClassifier],
) -> None:
    address, servicer = fake
    servicer.instant_category = "noop"
    async with Client(address, "t") as client:
        finished = await client.submit([task("noop")] * 2)
        done = await client.wait(finished, timeout=10, poll_interval=0.05)
        assert [t.id for t in done] == finished.task_ids and all(t.state == SUCCEEDED for t in done)
        assert servicer.watched == [] and servicer.get_calls == 0  # the answer was enough

        mixed = await client.submit([task("noop"), task("preprocess")])
        servicer.finish(mixed.task_ids[1])
        done = await client.wait(mixed, timeout=10, poll_interval=0.05)
    assert [t.state for t in done] == [SUCCEEDED, SUCCEEDED]
    assert servicer.watched == [1]  # only the task still queued in the answer


async def test_wait_times_out_with_one_error(fake: tuple[str, FakeClassifier]) -> None:
    address, servicer = fake
    servicer.watch_sends = False
    async with Client(address, "t") as client:
        ids = (await client.submit([task("noop")] * 2)).task_ids
        servicer.finish(ids[0])
        with pytest.raises(SwitchyardError) as caught:
            await client.wait(ids, timeout=0.3, poll_interval=0.05)
    assert (caught.value.code, caught.value.reason) == ("DEADLINE_EXCEEDED", "WAIT_TIMEOUT")
    assert caught.value.metadata["unfinished"] == ids[1]


async def test_get_task_not_found_is_switchyard_error(fake: tuple[str, FakeClassifier]) -> None:
    address, servicer = fake
    async with Client(address, "t") as client:
        servicer.tasks.clear()
        with pytest.raises(SwitchyardError):
            await client.get_task("task_missing")
