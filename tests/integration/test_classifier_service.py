"""The classifier over real gRPC, with a real tenant registry on PostgreSQL and a fake scheduler.

The fake (`FakeScheduler`) stands in for the scheduler, which another service owns; the
whole mesh is exercised by the e2e tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from services.classifier.admin import seed_demo_tenants
from services.classifier.app import ClassifierApp
from services.classifier.config import ClassifierConfig
from services.classifier.model import TenantQuotas
from switchyard.v1 import classifier_pb2, classifier_pb2_grpc, scheduler_pb2, scheduler_pb2_grpc, types_pb2
from tests.helpers import assert_eventually, free_port

INTERNAL = "integration-internal-token"
TERMINAL = {types_pb2.TASK_STATE_SUCCEEDED, types_pb2.TASK_STATE_FAILED, types_pb2.TASK_STATE_CANCELLED}


def _not_found(task_id: str) -> status_pb2.Status:
    info = error_details_pb2.ResourceInfo(resource_type="task", resource_name=task_id)
    status = status_pb2.Status(code=code_pb2.NOT_FOUND, message=f"task {task_id!r} not found")
    status.details.add().Pack(info)
    return status


class FakeScheduler(scheduler_pb2_grpc.SchedulerServiceServicer):
    """Keeps enqueued tasks in memory; answers NOT_FOUND for other tenants' ids."""

    def __init__(self) -> None:
        self.tasks: dict[str, types_pb2.Task] = {}
        self.enqueues: list[scheduler_pb2.EnqueueTasksRequest] = []
        self.metadata: list[dict[str, Any]] = []
        self.changed = asyncio.Event()

    async def EnqueueTasks(self, request: Any, context: Any) -> scheduler_pb2.EnqueueTasksResponse:
        self.metadata.append(dict(context.invocation_metadata()))
        self.enqueues.append(request)
        stored = []
        for task in request.tasks:
            copy = types_pb2.Task()
            copy.CopyFrom(task)
            copy.state = types_pb2.TASK_STATE_QUEUED
            self.tasks[copy.id] = copy
            stored.append(copy)
        return scheduler_pb2.EnqueueTasksResponse(tasks=stored)

    async def _own(self, tenant: str, task_ids: Any, context: Any) -> list[types_pb2.Task]:
        for task_id in task_ids:
            task = self.tasks.get(task_id)
            if task is None or task.tenant != tenant:
                await context.abort_with_status(rpc_status.to_status(_not_found(task_id)))
        return [self.tasks[t] for t in task_ids]

    async def GetTasks(self, request: Any, context: Any) -> scheduler_pb2.SchedulerServiceGetTasksResponse:
        return scheduler_pb2.SchedulerServiceGetTasksResponse(
            tasks=await self._own(request.tenant, request.task_ids, context)
        )

    def _job_tasks(self, tenant: str, job_id: str) -> list[types_pb2.Task]:
        return [t for t in self.tasks.values() if t.job_id == job_id and t.tenant == tenant]

    async def GetJob(self, request: Any, context: Any) -> scheduler_pb2.SchedulerServiceGetJobResponse:
        tasks = self._job_tasks(request.tenant, request.job_id)
        if not tasks:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"job {request.job_id!r} not found")
        done = sum(t.state in TERMINAL for t in tasks)
        cancelled = all(t.state == types_pb2.TASK_STATE_CANCELLED for t in tasks)
        state = types_pb2.JOB_STATE_CANCELLED if cancelled else types_pb2.JOB_STATE_ACTIVE
        job = types_pb2.Job(
            id=request.job_id,
            tenant=request.tenant,
            task_ids=[t.id for t in tasks],
            progress=types_pb2.JobProgress(total=len(tasks), done=done),
            state=state,
        )
        return scheduler_pb2.SchedulerServiceGetJobResponse(job=job)

    async def WatchTasks(self, request: Any, context: Any) -> AsyncIterator[Any]:
        while True:
            if request.job_id:
                tasks = self._job_tasks(request.tenant, request.job_id)
            else:
                tasks = await self._own(request.tenant, request.task_ids, context)
            self.changed.clear()
            yield scheduler_pb2.SchedulerServiceWatchTasksResponse(tasks=tasks)
            if tasks and all(t.state in TERMINAL for t in tasks):
                return
            await self.changed.wait()

    async def CancelTasks(
        self, request: Any, context: Any
    ) -> scheduler_pb2.SchedulerServiceCancelTasksResponse:
        ids = list(request.task_ids) or [t.id for t in self._job_tasks(request.tenant, request.job_id)]
        tasks = await self._own(request.tenant, ids, context)
        for task in tasks:
            task.state = types_pb2.TASK_STATE_CANCELLED
        self.changed.set()
        return scheduler_pb2.SchedulerServiceCancelTasksResponse(tasks=tasks)

    async def ListTasks(self, request: Any, context: Any) -> scheduler_pb2.SchedulerServiceListTasksResponse:
        tasks = [t for t in self.tasks.values() if t.tenant == request.tenant]
        if request.job_id:
            tasks = [t for t in tasks if t.job_id == request.job_id]
        return scheduler_pb2.SchedulerServiceListTasksResponse(tasks=tasks, next_page_token="")

    async def ListWorkers(self, request: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not in the fake")

    async def ConnectWorker(
        self, request_iterator: Any, context: Any
    ) -> AsyncIterator[scheduler_pb2.ConnectWorkerResponse]:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "workers never reach the fake")
        yield scheduler_pb2.ConnectWorkerResponse()  # never reached: abort raises

    async def ExplainTask(
        self, request: Any, context: Any
    ) -> scheduler_pb2.SchedulerServiceExplainTaskResponse:
        [task] = await self._own(request.tenant, [request.task_id], context)
        explanation = types_pb2.Explanation(task_id=task.id, state=task.state, wait_reasons=["fake"])
        return scheduler_pb2.SchedulerServiceExplainTaskResponse(explanation=explanation)


@dataclass
class Mesh:
    app: ClassifierApp
    scheduler: FakeScheduler
    stub: classifier_pb2_grpc.ClassifierServiceAsyncStub
    channel: grpc.aio.Channel
    tokens: dict[str, str]


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def start_app(pg_url: str, scheduler_address: str) -> ClassifierApp:
    config = ClassifierConfig(
        port=0,
        database_url=pg_url,
        scheduler_address=scheduler_address,
        internal_token=INTERNAL,
        token_cache_s=0.2,
        max_task_data_bytes=1024,
        scheduler_timeout_s=10,
        grace_period_s=0,
        tenant_watch_poll_s=0.1,
    )
    app = ClassifierApp(config)
    await app.start()
    return app


@pytest.fixture
async def mesh(pg_url: str) -> AsyncIterator[Mesh]:
    fake = FakeScheduler()
    server = grpc.aio.server()
    scheduler_pb2_grpc.add_SchedulerServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    tokens = seed_demo_tenants(pg_url)
    app = await start_app(pg_url, f"127.0.0.1:{port}")
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.server.port}")
    yield Mesh(app, fake, classifier_pb2_grpc.ClassifierServiceStub(channel), channel, tokens)
    await channel.close()
    await app.stop()
    await server.stop(0)


async def read_all(stream: Any) -> list[Any]:
    out: list[Any] = []
    while True:
        item: Any = await asyncio.wait_for(stream.read(), 20)
        if item is grpc.aio.EOF:
            return out
        out.append(item)


def submit_request(*specs: types_pb2.TaskSpec, split: types_pb2.SplitRequest | None = None) -> Any:
    return classifier_pb2.SubmitTasksRequest(tasks=list(specs), split=split)


async def test_health_is_serving(mesh: Mesh) -> None:
    health = health_pb2_grpc.HealthStub(mesh.channel)
    for service in ("", "switchyard.v1.ClassifierService"):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_submit_sends_classified_tasks_to_the_scheduler(mesh: Mesh) -> None:
    specs = [
        types_pb2.TaskSpec(category="create_synthetic_data", item_count=4),
        types_pb2.TaskSpec(category="ingest_source_assets"),
        types_pb2.TaskSpec(category="inference", precision=types_pb2.PRECISION_FP16),
    ]
    reply = await mesh.stub.SubmitTasks(submit_request(*specs), metadata=bearer(mesh.tokens["acme"]))
    assert reply.job_id.startswith("job_")
    assert [t.state for t in reply.tasks] == [types_pb2.TASK_STATE_QUEUED] * 3
    [enqueued] = mesh.scheduler.enqueues
    assert {(t.tenant, t.user, t.job_id) for t in enqueued.tasks} == {("acme", "alice", reply.job_id)}
    assert [(t.eligibility, t.classification_rule) for t in enqueued.tasks] == [
        (types_pb2.ELIGIBILITY_GPU_ONLY, "category:create_synthetic_data"),
        (types_pb2.ELIGIBILITY_CPU_ONLY, "category:ingest_source_assets"),
        (types_pb2.ELIGIBILITY_GPU_ONLY, "constraint:precision=fp16"),
    ]
    assert enqueued.tasks[0].priority_class > enqueued.tasks[1].priority_class
    assert all(t.id.startswith("task_") and t.HasField("submitted_at") for t in enqueued.tasks)
    # The scheduler is called with the service credential, not the tenant's token.
    assert mesh.scheduler.metadata[0]["authorization"] == f"Bearer {INTERNAL}"


async def test_split_gives_ceil_n_over_b_tasks_under_one_job(mesh: Mesh) -> None:
    split = types_pb2.SplitRequest(
        template=types_pb2.TaskSpec(category="create_synthetic_data"), total_items=10, batch_size=3
    )
    reply = await mesh.stub.SubmitTasks(submit_request(split=split), metadata=bearer(mesh.tokens["globex"]))
    assert [t.spec.item_count for t in reply.tasks] == [3, 3, 3, 1]
    assert {t.job_id for t in reply.tasks} == {reply.job_id}
    assert [t.spec.labels["split_index"] for t in reply.tasks] == ["0", "1", "2", "3"]
    assert {t.tenant for t in reply.tasks} == {"globex"}


async def test_classify_is_a_dry_run(mesh: Mesh) -> None:
    request = classifier_pb2.ClassifyTasksRequest(
        tasks=[
            types_pb2.TaskSpec(category="create_synthetic_data"),
            types_pb2.TaskSpec(category="inference", precision=types_pb2.PRECISION_INT8),
        ]
    )
    reply = await mesh.stub.ClassifyTasks(request, metadata=bearer(mesh.tokens["acme"]))
    assert [(c.category, c.eligibility, c.rule) for c in reply.classifications] == [
        ("create_synthetic_data", types_pb2.ELIGIBILITY_GPU_ONLY, "category:create_synthetic_data"),
        ("inference", types_pb2.ELIGIBILITY_CPU_ONLY, "constraint:precision=int8"),
    ]
    assert mesh.scheduler.enqueues == []


@pytest.mark.parametrize("metadata", [(), bearer("sy_wrong"), (("authorization", "Basic abc"),)])
async def test_missing_or_bad_token_is_unauthenticated(mesh: Mesh, metadata: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await mesh.stub.SubmitTasks(submit_request(types_pb2.TaskSpec(category="noop")), metadata=metadata)
    assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert mesh.scheduler.enqueues == []


async def test_revoked_token_stops_working(mesh: Mesh) -> None:
    assert mesh.app.store is not None
    issued = await mesh.app.store.issue_token("acme", "alice")
    request = classifier_pb2.ClassifyTasksRequest(tasks=[types_pb2.TaskSpec(category="noop")])
    await mesh.stub.ClassifyTasks(request, metadata=bearer(issued.token))
    assert await mesh.app.store.revoke_token(issued.token)

    async def refused() -> bool:
        try:
            await mesh.stub.ClassifyTasks(request, metadata=bearer(issued.token))
        except grpc.aio.AioRpcError as exc:
            return exc.code() == grpc.StatusCode.UNAUTHENTICATED
        return False

    await assert_eventually(refused, timeout=10, msg="revoked token still accepted")
    await mesh.stub.ClassifyTasks(request, metadata=bearer(mesh.tokens["acme"]))


async def test_malformed_submit_lists_every_bad_field_then_a_good_one_works(mesh: Mesh) -> None:
    bad = submit_request(
        types_pb2.TaskSpec(category="nope"),
        types_pb2.TaskSpec(category="inference", batch_size=-1),
        types_pb2.TaskSpec(category="ingest_source_assets", resources=types_pb2.ResourceRequest(gpu_count=1)),
    )
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await mesh.stub.SubmitTasks(bad, metadata=bearer(mesh.tokens["acme"]))
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(exc.value)  # type: ignore[arg-type]
    assert status is not None
    violations = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            request = error_details_pb2.BadRequest()
            detail.Unpack(request)
            violations = [v.field for v in request.field_violations]
    assert violations == [
        "tasks[0].category",
        "tasks[1].batch_size",
        "tasks[2].resources.gpu_count",
    ]
    assert mesh.scheduler.enqueues == []
    good = await mesh.stub.SubmitTasks(
        submit_request(types_pb2.TaskSpec(category="noop")), metadata=bearer(mesh.tokens["acme"])
    )
    assert len(good.tasks) == 1


async def test_too_many_tasks_is_resource_exhausted(mesh: Mesh) -> None:
    split = types_pb2.SplitRequest(
        template=types_pb2.TaskSpec(category="noop"), total_items=10**9, batch_size=1
    )
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await mesh.stub.SubmitTasks(submit_request(split=split), metadata=bearer(mesh.tokens["acme"]))
    assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_reads_are_scoped_to_the_callers_tenant(mesh: Mesh) -> None:
    acme, globex = bearer(mesh.tokens["acme"]), bearer(mesh.tokens["globex"])
    reply = await mesh.stub.SubmitTasks(submit_request(types_pb2.TaskSpec(category="noop")), metadata=acme)
    task_id = reply.tasks[0].id
    got = await mesh.stub.GetTasks(classifier_pb2.GetTasksRequest(task_ids=[task_id]), metadata=acme)
    assert [t.id for t in got.tasks] == [task_id]
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await mesh.stub.GetTasks(classifier_pb2.GetTasksRequest(task_ids=[task_id]), metadata=globex)
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND
    assert exc.value.details() == f"task {task_id!r} not found"
    status = rpc_status.from_call(exc.value)  # type: ignore[arg-type]
    assert status is not None and status.details[0].Is(error_details_pb2.ResourceInfo.DESCRIPTOR)
    listed = await mesh.stub.ListTasks(classifier_pb2.ListTasksRequest(job_id=reply.job_id), metadata=globex)
    assert list(listed.tasks) == []
    listed = await mesh.stub.ListTasks(classifier_pb2.ListTasksRequest(job_id=reply.job_id), metadata=acme)
    assert [t.id for t in listed.tasks] == [task_id]
    explained = await mesh.stub.ExplainTask(classifier_pb2.ExplainTaskRequest(task_id=task_id), metadata=acme)
    assert explained.explanation.wait_reasons == ["fake"]


async def test_watch_tasks_and_watch_job_follow_the_scheduler(mesh: Mesh) -> None:
    acme = bearer(mesh.tokens["acme"])
    specs = [types_pb2.TaskSpec(category="noop"), types_pb2.TaskSpec(category="noop")]
    reply = await mesh.stub.SubmitTasks(submit_request(*specs), metadata=acme)
    ids = [t.id for t in reply.tasks]
    job = await mesh.stub.GetJob(classifier_pb2.GetJobRequest(job_id=reply.job_id), metadata=acme)
    assert job.job.progress.total == 2

    tasks_stream = mesh.stub.WatchTasks(classifier_pb2.WatchTasksRequest(task_ids=ids), metadata=acme)
    job_stream = mesh.stub.WatchJob(classifier_pb2.WatchJobRequest(job_id=reply.job_id), metadata=acme)
    first: Any = await asyncio.wait_for(tasks_stream.read(), 20)
    assert [t.state for t in first.tasks] == [types_pb2.TASK_STATE_QUEUED] * 2
    first_job: Any = await asyncio.wait_for(job_stream.read(), 20)
    assert first_job.job.state == types_pb2.JOB_STATE_ACTIVE

    await mesh.stub.CancelTasks(classifier_pb2.CancelTasksRequest(job_id=reply.job_id), metadata=acme)
    updates = await read_all(tasks_stream)
    assert [t.state for t in updates[-1].tasks] == [types_pb2.TASK_STATE_CANCELLED] * 2
    jobs = [u.job for u in await read_all(job_stream)]
    assert jobs[-1].state == types_pb2.JOB_STATE_CANCELLED
    assert jobs[-1].progress.done == 2


async def test_watch_of_another_tenants_job_is_not_found(mesh: Mesh) -> None:
    reply = await mesh.stub.SubmitTasks(
        submit_request(types_pb2.TaskSpec(category="noop")), metadata=bearer(mesh.tokens["acme"])
    )
    stream = mesh.stub.WatchJob(
        classifier_pb2.WatchJobRequest(job_id=reply.job_id), metadata=bearer(mesh.tokens["initech"])
    )
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await asyncio.wait_for(stream.read(), 20)
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND


async def test_read_requests_are_validated(mesh: Mesh) -> None:
    acme = bearer(mesh.tokens["acme"])
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await mesh.stub.GetTasks(classifier_pb2.GetTasksRequest(task_ids=[]), metadata=acme)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await mesh.stub.CancelTasks(classifier_pb2.CancelTasksRequest(), metadata=acme)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_internal_token_may_act_for_a_tenant(mesh: Mesh) -> None:
    metadata = (*bearer(INTERNAL), ("x-switchyard-tenant", "initech"))
    reply = await mesh.stub.SubmitTasks(
        submit_request(types_pb2.TaskSpec(category="noop")), metadata=metadata
    )
    assert reply.tasks[0].tenant == "initech"


async def test_scheduler_down_is_unavailable(pg_url: str) -> None:
    seed_demo_tenants(pg_url)
    tokens = seed_demo_tenants(pg_url)  # idempotent: creates nothing twice, issues fresh tokens
    app = await start_app(pg_url, f"127.0.0.1:{free_port()}")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.server.port}") as channel:
            stub = classifier_pb2_grpc.ClassifierServiceStub(channel)
            for _ in range(2):
                with pytest.raises(grpc.aio.AioRpcError) as exc:
                    await stub.SubmitTasks(
                        submit_request(types_pb2.TaskSpec(category="noop")), metadata=bearer(tokens["acme"])
                    )
                assert exc.value.code() == grpc.StatusCode.UNAVAILABLE
            classified = await stub.ClassifyTasks(
                classifier_pb2.ClassifyTasksRequest(tasks=[types_pb2.TaskSpec(category="noop")]),
                metadata=bearer(tokens["acme"]),
            )
            assert len(classified.classifications) == 1
    finally:
        await app.stop()


async def test_watch_tenants_sends_a_snapshot_then_changes(mesh: Mesh) -> None:
    assert mesh.app.store is not None
    await mesh.app.store.update_tenant("acme", share=2.0, quotas=TenantQuotas(max_queued_tasks=50))
    stream = mesh.stub.WatchTenants(classifier_pb2.WatchTenantsRequest(), metadata=bearer(INTERNAL))
    first: Any = await asyncio.wait_for(stream.read(), 20)
    assert first.snapshot and list(first.removed) == []
    assert [(t.name, t.share, t.quotas.max_queued_tasks) for t in first.tenants] == [
        ("acme", 2.0, 50),
        ("globex", 1.0, 0),
        ("initech", 1.0, 0),
    ]
    await mesh.app.store.update_tenant(
        "globex", quotas=TenantQuotas(submit_rate_per_second=20, submit_burst=40)
    )
    await mesh.app.store.create_tenant("umbrella", 0.5)
    seen: dict[str, Any] = {}
    while set(seen) != {"globex", "umbrella"}:
        update: Any = await asyncio.wait_for(stream.read(), 20)
        assert not update.snapshot
        seen.update({t.name: t for t in update.tenants})
    assert (seen["globex"].quotas.submit_rate_per_second, seen["globex"].quotas.submit_burst) == (20, 40)
    assert seen["umbrella"].share == 0.5
    stream.cancel()


@pytest.mark.parametrize(
    ("token", "code"),
    [(None, grpc.StatusCode.UNAUTHENTICATED), ("acme", grpc.StatusCode.PERMISSION_DENIED)],
)
async def test_watch_tenants_is_for_services_only(
    mesh: Mesh, token: str | None, code: grpc.StatusCode
) -> None:
    metadata = bearer(mesh.tokens[token]) if token else ()
    stream = mesh.stub.WatchTenants(classifier_pb2.WatchTenantsRequest(), metadata=metadata)
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await asyncio.wait_for(stream.read(), 20)
    assert exc.value.code() == code
