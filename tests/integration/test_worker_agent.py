"""The worker against in-process fakes of the scheduler and the profile store.

The fakes implement only the worker-facing RPCs (ConnectWorker, IngestMetrics); the real
services are exercised by the end-to-end tests. One worker (two slot processes) serves
the whole module, because starting slots means importing torch.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from google.protobuf import duration_pb2, json_format, struct_pb2
from google.rpc import code_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from common.channels import authed_channel
from common.ids import new_id
from common.timeutil import to_timestamp, utcnow
from services.worker import agent
from services.worker import results as worker_results
from services.worker.app import WorkerApp
from services.worker.config import WorkerConfig
from services.worker.handlers.context import HandlerContext
from services.worker.model import HandlerResult, TaskInput
from switchyard.v1 import (
    profile_store_pb2,
    profile_store_pb2_grpc,
    scheduler_pb2,
    scheduler_pb2_grpc,
    types_pb2,
    worker_pb2,
    worker_pb2_grpc,
)
from tests.helpers import assert_eventually, free_port

pytestmark = pytest.mark.asyncio(loop_scope="module")

TOKEN = "worker-test-internal-token-0123456789"
HERE = "tests.integration.test_worker_agent"


# Handlers for failure paths; the slot processes import them from this module.
def failing_handler(task: TaskInput, ctx: HandlerContext) -> HandlerResult:
    raise RuntimeError(f"boom: cannot handle {task.task_id}")


def sleeping_handler(task: TaskInput, ctx: HandlerContext) -> HandlerResult:
    time.sleep(float(task.parameters.get("seconds", 60)))
    return HandlerResult(summary={"slept": True})


def crashing_handler(task: TaskInput, ctx: HandlerContext) -> HandlerResult:
    os._exit(3)


class FakeScheduler(scheduler_pb2_grpc.SchedulerServiceServicer):
    def __init__(self) -> None:
        self.registrations: list[types_pb2.WorkerInfo] = []
        self.tokens: list[str] = []
        self.started: dict[str, scheduler_pb2.TaskStarted] = {}
        self.outcomes: dict[str, scheduler_pb2.TaskOutcome] = {}
        self.heartbeats: list[scheduler_pb2.Heartbeat] = []
        self.results: list[scheduler_pb2.TaskResults] = []
        self.outbox: asyncio.Queue[scheduler_pb2.ConnectWorkerResponse | None] = asyncio.Queue()

    async def ConnectWorker(
        self, request_iterator: AsyncIterator[scheduler_pb2.ConnectWorkerRequest], context: Any
    ) -> AsyncIterator[scheduler_pb2.ConnectWorkerResponse]:
        self.tokens.append(dict(context.invocation_metadata()).get("authorization", ""))
        first = await anext(aiter(request_iterator))
        self.registrations.append(first.register.worker)
        outbox: asyncio.Queue[scheduler_pb2.ConnectWorkerResponse | None] = asyncio.Queue()
        self.outbox = outbox
        registered = scheduler_pb2.Registered(worker_id=first.register.worker.id, heartbeat_interval_ms=200)
        yield scheduler_pb2.ConnectWorkerResponse(registered=registered)
        reader = asyncio.create_task(self._read(request_iterator))
        try:
            while (message := await outbox.get()) is not None:
                yield message
        finally:
            reader.cancel()

    async def _read(self, requests: AsyncIterator[scheduler_pb2.ConnectWorkerRequest]) -> None:
        async for request in requests:
            if request.HasField("heartbeat"):
                self.heartbeats.append(request.heartbeat)
            if request.HasField("results"):
                self.results.append(request.results)
            for started in request.results.started:
                self.started[started.task_id] = started
            for outcome in request.results.outcomes:
                self.outcomes[outcome.task_id] = outcome

    def assign(self, *tasks: types_pb2.Task) -> None:
        batch = [scheduler_pb2.Assignment(task=t, assignment_token=f"tok-{t.id}") for t in tasks]
        self.outbox.put_nowait(
            scheduler_pb2.ConnectWorkerResponse(assignments=scheduler_pb2.Assignments(assignments=batch))
        )

    def cancel(self, *task_ids: str) -> None:
        cancel = scheduler_pb2.CancelAssignments(task_ids=list(task_ids))
        self.outbox.put_nowait(scheduler_pb2.ConnectWorkerResponse(cancel=cancel))

    def break_stream(self) -> None:
        self.outbox.put_nowait(None)

    async def outcome(self, task_id: str, timeout: float = 30.0) -> scheduler_pb2.TaskOutcome:
        return await assert_eventually(
            lambda: self.outcomes.get(task_id), timeout=timeout, msg=f"outcome {task_id}"
        )


class FakeProfileStore(profile_store_pb2_grpc.ProfileStoreServiceServicer):
    def __init__(self) -> None:
        self.metrics: dict[str, types_pb2.ResultMetrics] = {}
        self.reject: set[str] = set()

    async def IngestMetrics(
        self, request_iterator: AsyncIterator[profile_store_pb2.IngestMetricsRequest], context: Any
    ) -> AsyncIterator[profile_store_pb2.IngestMetricsResponse]:
        async for request in request_iterator:
            acks = []
            for m in request.metrics:
                code = code_pb2.INVALID_ARGUMENT if m.task_id in self.reject else code_pb2.OK
                if code == code_pb2.OK:
                    self.metrics[m.task_id] = m
                acks.append(
                    profile_store_pb2.MetricAck(
                        task_id=m.task_id, attempt=m.attempt, status=status_pb2.Status(code=code)
                    )
                )
            yield profile_store_pb2.IngestMetricsResponse(acks=acks)


@dataclass
class Mesh:
    app: WorkerApp
    scheduler: FakeScheduler
    store: FakeProfileStore
    store_port: int
    store_server: grpc.aio.Server | None = None

    async def start_store(self) -> None:
        if self.store_server is None:
            server = grpc.aio.server()
            profile_store_pb2_grpc.add_ProfileStoreServiceServicer_to_server(self.store, server)
            assert server.add_insecure_port(f"127.0.0.1:{self.store_port}") == self.store_port
            await server.start()
            self.store_server = server

    async def stop_store(self) -> None:
        if self.store_server is not None:
            await self.store_server.stop(0)
            self.store_server = None

    async def metric(self, task_id: str) -> types_pb2.ResultMetrics:
        await self.start_store()
        return await assert_eventually(lambda: self.store.metrics.get(task_id), msg=f"metrics of {task_id}")

    async def settled(self) -> None:
        """Every slot idle again (after kills and restarts)."""
        await assert_eventually(
            lambda: self.app.pool.free_slots() == self.app.pool.size, timeout=60, msg="slots free"
        )


def make_task(
    category: str,
    *,
    timeout_s: float = 0,
    params: dict[str, Any] | None = None,
    eligibility: types_pb2.Eligibility.ValueType = types_pb2.ELIGIBILITY_UNSPECIFIED,
    **spec: Any,
) -> types_pb2.Task:
    task_spec = types_pb2.TaskSpec(category=category, **spec)
    if params:
        task_spec.parameters.CopyFrom(struct_pb2.Struct())
        task_spec.parameters.update(params)
    if timeout_s:
        task_spec.timeout.CopyFrom(
            duration_pb2.Duration(nanos=int(timeout_s * 1e9) % 10**9, seconds=int(timeout_s))
        )
    return types_pb2.Task(
        id=new_id("task"),
        tenant="acme",
        category=category,
        attempt=1,
        eligibility=eligibility,
        spec=task_spec,
        queued_at=to_timestamp(utcnow() - timedelta(seconds=1)),
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Mesh]:
    scheduler, store = FakeScheduler(), FakeProfileStore()  # type: ignore[abstract]
    server = grpc.aio.server()
    scheduler_pb2_grpc.add_SchedulerServiceServicer_to_server(scheduler, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    store_port = free_port()
    config = WorkerConfig(
        port=0,
        slots=2,
        internal_token=TOKEN,
        scheduler_address=f"127.0.0.1:{port}",
        profile_store_address=f"127.0.0.1:{store_port}",
        artifact_dir=str(tmp_path_factory.mktemp("artifacts")),
        heartbeat_interval_s=0.2,
        task_timeout_s=60,
        grace_period_s=1,
        extra_handlers=(
            f"test_fail={HERE}:failing_handler",
            f"test_sleep={HERE}:sleeping_handler",
            f"test_crash={HERE}:crashing_handler",
        ),
    )
    app = WorkerApp(config)
    await app.start()
    mesh = Mesh(app=app, scheduler=scheduler, store=store, store_port=store_port)
    await assert_eventually(lambda: app.link.connected, msg="worker registered")
    yield mesh
    await app.stop()
    await mesh.stop_store()
    await server.stop(0)


async def test_metrics_wait_for_a_late_profile_store_then_arrive(mesh: Mesh) -> None:
    await mesh.stop_store()
    tasks = [make_task("noop", item_count=3) for _ in range(3)]
    mesh.scheduler.assign(*tasks)
    for task in tasks:
        assert (await mesh.scheduler.outcome(task.id)).outcome == types_pb2.OUTCOME_SUCCEEDED
    await assert_eventually(lambda: mesh.app.shipper.pending >= 3, msg="metrics buffered")
    assert not any(t.id in mesh.store.metrics for t in tasks)

    await mesh.start_store()
    for task in tasks:
        assert (await mesh.metric(task.id)).outcome == types_pb2.OUTCOME_SUCCEEDED
    await assert_eventually(lambda: mesh.app.shipper.pending == 0, msg="buffer emptied by acks")


async def _run_with_writes_held(
    mesh: Mesh, monkeypatch: pytest.MonkeyPatch, n: int
) -> tuple[list[types_pb2.Task], list[scheduler_pb2.TaskResults]]:
    """`n` no-op tasks with the write gap and the started linger stretched to an hour; the
    tasks, once all succeeded, and the result messages the scheduler got meanwhile."""
    await mesh.settled()
    monkeypatch.setattr(agent, "WRITE_GAP_S", 3600.0)
    monkeypatch.setattr(agent, "STARTED_LINGER_S", 3600.0)
    tasks = [make_task("noop") for _ in range(n)]
    first = len(mesh.scheduler.results)
    mesh.scheduler.assign(*tasks)
    for task in tasks:
        assert (await mesh.scheduler.outcome(task.id)).outcome == types_pb2.OUTCOME_SUCCEEDED
    return tasks, mesh.scheduler.results[first:]


async def test_outcomes_wait_for_the_pool_to_finish_then_go_together(
    mesh: Mesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the pool runs more tasks, outcomes wait for them (the write gap stretched to an
    hour here), and all go in one message as soon as the pool has nothing left to run."""
    tasks, sent = await _run_with_writes_held(mesh, monkeypatch, 5)
    assert [sorted(o.task_id for o in m.outcomes) for m in sent] == [sorted(t.id for t in tasks)]
    assert not sent[0].started  # each outcome carries its started_at


async def test_outcomes_beyond_one_message_all_go_when_the_pool_is_idle(
    mesh: Mesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three outcomes held while messages carry two: the third must not wait for a report
    that never comes (heartbeats carry no results)."""
    monkeypatch.setattr(worker_results, "MAX_BATCH", 2)
    tasks, messages = await _run_with_writes_held(mesh, monkeypatch, 3)
    sent = [o.task_id for m in messages for o in m.outcomes]
    assert sorted(sent) == sorted(t.id for t in tasks)
    assert all(len(m.outcomes) <= 2 for m in messages)


async def test_registration_describes_the_worker(mesh: Mesh) -> None:
    info = mesh.scheduler.registrations[0]
    assert info.id == mesh.app.worker_id and info.id.startswith("cpu-")
    assert info.kind == types_pb2.WORKER_KIND_CPU
    assert info.device_model
    assert info.slots == 2 and info.free_slots == 2
    assert info.memory_bytes > 0 and info.gpu_memory_bytes == 0
    assert list(info.precisions) == [
        types_pb2.PRECISION_FP32,
        types_pb2.PRECISION_BF16,
        types_pb2.PRECISION_INT8,
    ]
    assert {"inference", "create_synthetic_data", "noop", "training_step", "test_fail"} <= set(
        info.categories
    )
    assert info.address == f"127.0.0.1:{mesh.app.server.port}"
    assert info.telemetry.memory_total_bytes > 0 and not info.draining
    assert mesh.scheduler.tokens[0] == f"Bearer {TOKEN}"
    await assert_eventually(lambda: len(mesh.scheduler.heartbeats) >= 2, msg="heartbeats")
    assert mesh.scheduler.heartbeats[-1].telemetry.memory_total_bytes > 0


async def test_inference_and_synthetic_data_succeed_with_metrics(mesh: Mesh) -> None:
    infer = make_task(
        "inference",
        model=types_pb2.ModelRef(name="resnet_small", version="1"),
        precision=types_pb2.PRECISION_INT8,
        batch_size=4,
        item_count=8,
    )
    create = make_task("create_synthetic_data", item_count=12, batch_size=6, params={"seed": 3})
    mesh.scheduler.assign(infer, create)

    out = await mesh.scheduler.outcome(infer.id)
    assert out.outcome == types_pb2.OUTCOME_SUCCEEDED, out.error
    assert out.assignment_token == f"tok-{infer.id}" and out.attempt == 1
    summary = json_format.MessageToDict(out.result.summary)
    assert summary["model"] == "resnet_small" and summary["precision"] == "int8"
    assert list(summary["output_shape"]) == [8, 10]
    assert 0 < summary["max_abs_diff_vs_fp32"] < 1
    assert len(out.result.inline) == 8 * 10 * 4
    assert mesh.scheduler.started[infer.id].assignment_token == f"tok-{infer.id}"

    out = await mesh.scheduler.outcome(create.id)
    assert out.outcome == types_pb2.OUTCOME_SUCCEEDED, out.error
    assert json_format.MessageToDict(out.result.summary)["count"] == 12
    assert out.result.artifact_uri.startswith("file://")
    assert Path(out.result.artifact_uri.removeprefix("file://")).is_file()

    metric = await mesh.metric(infer.id)
    assert metric.worker_id == mesh.app.worker_id
    assert metric.device_model == mesh.app.device.device_model
    assert metric.model.name == "resnet_small" and metric.precision == types_pb2.PRECISION_INT8
    assert metric.batch_size == 4 and metric.category == "inference" and metric.tenant == "acme"
    assert metric.assignment_token == f"tok-{infer.id}" and metric.attempt == 1
    assert metric.queue_wait.ToTimedelta() >= timedelta(seconds=1)
    assert metric.execution_time.ToTimedelta() > timedelta(0)
    assert metric.items_per_second > 0 and metric.memory_bytes > 0
    assert metric.outcome == types_pb2.OUTCOME_SUCCEEDED and metric.HasField("finished_at")


async def test_outputs_are_cached_published_and_announced_then_reused(mesh: Mesh) -> None:
    block = new_id("assets")
    gen = make_task(
        "generate_source_assets", item_count=4, outputs=[types_pb2.DatablockRef(id=block)], params={"seed": 1}
    )
    mesh.scheduler.assign(gen)
    out = await mesh.scheduler.outcome(gen.id)
    assert out.outcome == types_pb2.OUTCOME_SUCCEEDED, out.error
    uri = json_format.MessageToDict(out.result.summary)["outputs"][block]
    assert uri == out.result.artifact_uri and uri.startswith("file://")
    assert Path(uri.removeprefix("file://")).is_file()  # published to the shared store
    assert block in mesh.app.datablocks
    await assert_eventually(
        lambda: block in mesh.scheduler.heartbeats[-1].cached_datablocks, msg="announced in a heartbeat"
    )

    hits = mesh.app.datablocks.hits
    ingest = make_task("ingest_source_assets", inputs=[types_pb2.DatablockRef(id=block, uri=uri)])
    mesh.scheduler.assign(ingest)
    out = await mesh.scheduler.outcome(ingest.id)
    assert out.outcome == types_pb2.OUTCOME_SUCCEEDED, out.error
    assert json_format.MessageToDict(out.result.summary)["accepted"] == 4
    assert mesh.app.datablocks.hits == hits + 1


async def test_a_missing_input_fails_naming_it(mesh: Mesh) -> None:
    missing = types_pb2.DatablockRef(id="no-such-block", uri="file:///nonexistent/no-such-block.pt")
    task = make_task("ingest_source_assets", inputs=[missing])
    mesh.scheduler.assign(task)
    out = await mesh.scheduler.outcome(task.id)
    assert out.outcome == types_pb2.OUTCOME_FAILED
    assert out.error.reason == "INPUT_NOT_FOUND" and "no-such-block" in out.error.message


async def test_a_gpu_only_task_is_refused_by_a_cpu_worker(mesh: Mesh) -> None:
    task = make_task("create_synthetic_data", item_count=2, eligibility=types_pb2.ELIGIBILITY_GPU_ONLY)
    mesh.scheduler.assign(task)
    out = await mesh.scheduler.outcome(task.id)
    assert out.outcome == types_pb2.OUTCOME_FAILED and out.error.reason == "INELIGIBLE_WORKER"
    assert task.id not in mesh.scheduler.started
    either = make_task("noop", eligibility=types_pb2.ELIGIBILITY_CPU_OR_GPU)
    mesh.scheduler.assign(either)
    assert (await mesh.scheduler.outcome(either.id)).outcome == types_pb2.OUTCOME_SUCCEEDED


async def test_handler_error_fails_the_task_and_the_slot_keeps_serving(mesh: Mesh) -> None:
    await mesh.settled()
    pids = mesh.app.pool.slot_pids()
    bad, unknown = make_task("test_fail"), make_task("no_such_category")
    mesh.scheduler.assign(bad, unknown)
    out = await mesh.scheduler.outcome(bad.id)
    assert out.outcome == types_pb2.OUTCOME_FAILED
    assert out.error.reason == "HANDLER_ERROR" and f"boom: cannot handle {bad.id}" in out.error.message
    out = await mesh.scheduler.outcome(unknown.id)
    assert out.outcome == types_pb2.OUTCOME_FAILED and out.error.reason == "UNKNOWN_CATEGORY"

    after = [make_task("noop") for _ in range(4)]
    mesh.scheduler.assign(*after)
    for task in after:
        assert (await mesh.scheduler.outcome(task.id)).outcome == types_pb2.OUTCOME_SUCCEEDED
    assert mesh.app.pool.slot_pids() == pids


async def test_timeout_kills_and_replaces_the_slot(mesh: Mesh) -> None:
    await mesh.settled()
    pids = set(mesh.app.pool.slot_pids())
    slow = make_task("test_sleep", timeout_s=0.5, params={"seconds": 60})
    mesh.scheduler.assign(slow)
    out = await mesh.scheduler.outcome(slow.id)
    assert out.outcome == types_pb2.OUTCOME_TIMED_OUT and out.error.reason == "TIMED_OUT"
    await mesh.settled()
    assert len(set(mesh.app.pool.slot_pids()) - pids) == 1
    task = make_task("noop")
    mesh.scheduler.assign(task)
    assert (await mesh.scheduler.outcome(task.id)).outcome == types_pb2.OUTCOME_SUCCEEDED


async def test_crashing_slot_fails_the_task_and_is_replaced(mesh: Mesh) -> None:
    await mesh.settled()
    crash = make_task("test_crash")
    mesh.scheduler.assign(crash)
    out = await mesh.scheduler.outcome(crash.id)
    assert out.outcome == types_pb2.OUTCOME_FAILED and out.error.reason == "SLOT_CRASHED"
    await mesh.settled()


async def test_cancel_stops_a_running_task(mesh: Mesh) -> None:
    await mesh.settled()
    slow = make_task("test_sleep", params={"seconds": 60})
    mesh.scheduler.assign(slow)
    await assert_eventually(lambda: slow.id in mesh.scheduler.started, msg="started")
    mesh.scheduler.cancel(slow.id)
    out = await mesh.scheduler.outcome(slow.id)
    assert out.outcome == types_pb2.OUTCOME_CANCELLED
    assert mesh.app.pool.running_task_ids() == ()


async def test_broken_stream_stops_tasks_and_the_worker_registers_again(mesh: Mesh) -> None:
    await mesh.settled()
    slow = make_task("test_sleep", params={"seconds": 60})
    mesh.scheduler.assign(slow)
    await assert_eventually(lambda: slow.id in mesh.scheduler.started, msg="started")
    registrations = len(mesh.scheduler.registrations)
    mesh.scheduler.break_stream()
    await assert_eventually(lambda: len(mesh.scheduler.registrations) > registrations, msg="registered again")
    await assert_eventually(lambda: slow.id not in mesh.app.pool.running_task_ids(), msg="task stopped")
    assert slow.id not in mesh.scheduler.outcomes  # a superseded session's outcome is not sent
    metric = await mesh.metric(slow.id)
    assert metric.outcome == types_pb2.OUTCOME_CANCELLED
    task = make_task("noop")
    mesh.scheduler.assign(task)
    assert (await mesh.scheduler.outcome(task.id)).outcome == types_pb2.OUTCOME_SUCCEEDED


async def test_describe_and_drain_over_grpc(mesh: Mesh) -> None:
    await mesh.settled()
    address = f"127.0.0.1:{mesh.app.server.port}"
    async with authed_channel(address, None) as anonymous:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await worker_pb2_grpc.WorkerServiceStub(anonymous).DescribeWorker(
                worker_pb2.DescribeWorkerRequest()
            )
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    async with authed_channel(address, TOKEN) as channel:
        stub = worker_pb2_grpc.WorkerServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        described = await stub.DescribeWorker(worker_pb2.DescribeWorkerRequest())
        assert described.worker.id == mesh.app.worker_id and described.worker.slots == 2
        assert {"inference", "create_synthetic_data", "noop"} <= set(described.handlers)
        check = await health.Check(health_pb2.HealthCheckRequest(service=""))
        assert check.status == health_pb2.HealthCheckResponse.SERVING

        slow = make_task("test_sleep", params={"seconds": 1.5})
        mesh.scheduler.assign(slow)
        await assert_eventually(lambda: slow.id in mesh.scheduler.started, msg="started")
        drained = await stub.DrainWorker(worker_pb2.DrainWorkerRequest())
        assert drained.worker.draining and drained.worker.free_slots == 0
        check = await health.Check(health_pb2.HealthCheckRequest(service=""))
        assert check.status == health_pb2.HealthCheckResponse.NOT_SERVING

        late = make_task("noop")
        mesh.scheduler.assign(late)
        out = await mesh.scheduler.outcome(late.id)
        assert out.outcome == types_pb2.OUTCOME_FAILED and out.error.reason == "WORKER_DRAINING"
        assert (await mesh.scheduler.outcome(slow.id)).outcome == types_pb2.OUTCOME_SUCCEEDED
        beats = len(mesh.scheduler.heartbeats)
        await assert_eventually(lambda: len(mesh.scheduler.heartbeats) > beats + 1, msg="heartbeat")
        assert mesh.scheduler.heartbeats[-1].free_slots == 0


async def test_link_fails_over_to_the_next_scheduler_address() -> None:
    from services.worker.agent import SchedulerLink
    from services.worker.device import cpu_device
    from services.worker.model import TelemetrySample, WorkerStatus
    from services.worker.pool import SlotPool

    scheduler = FakeScheduler()  # type: ignore[abstract]
    server = grpc.aio.server()
    scheduler_pb2_grpc.add_SchedulerServiceServicer_to_server(scheduler, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    pool = SlotPool(
        slots=1, device="cpu", artifact_dir="", on_started=lambda *a: None, on_finished=lambda r: None
    )
    status = WorkerStatus(
        worker_id="w-standby-test",
        device=cpu_device(),
        slots=1,
        free_slots=1,
        categories=("noop",),
        cached_datablocks=(),
        telemetry=TelemetrySample(),
        address="",
        draining=False,
    )
    link = SchedulerLink(
        address=f"127.0.0.1:{free_port()}, 127.0.0.1:{port}",
        token=TOKEN,
        pool=pool,
        status=lambda: status,
        on_finished=lambda r: None,
        on_registered=lambda w: None,
        heartbeat_interval_s=1,
        default_timeout_s=1,
        device="cpu",
        artifact_dir="",
    )
    link.start()
    try:
        await assert_eventually(lambda: link.connected, msg="registered with the second address")
        assert scheduler.registrations[0].id == "w-standby-test"
    finally:
        await link.stop()
        await server.stop(0)
