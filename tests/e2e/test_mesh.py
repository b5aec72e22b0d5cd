"""Tasks travel end to end through four real services, on SQLite and on PostgreSQL."""

from __future__ import annotations

import grpc
import pytest

from common.channels import authed_channel
from switchyard import Client, SwitchyardError, specs
from switchyard.v1 import (
    profile_store_pb2,
    profile_store_pb2_grpc,
    scheduler_pb2,
    scheduler_pb2_grpc,
    types_pb2,
)
from tests.helpers import assert_eventually

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.parametrize("mesh_database", ["sqlite", "postgres"], indirect=True, scope="module"),
]


async def test_tasks_run_end_to_end_and_metrics_reach_profiles(mesh):
    async with Client(mesh.classifier_address, mesh.tokens["acme"]) as client:
        submitted = await client.submit(
            [specs.inference(model="mlp", batch_size=8), specs.inference(model="resnet_small", batch_size=4)],
            split=specs.split(specs.create_synthetic_data(), total_items=10, batch_size=4),
        )
        assert len(submitted.tasks) == 2 + 3
        done = await client.wait(submitted.task_ids, timeout=120)
        assert [t.state for t in done] == [types_pb2.TASK_STATE_SUCCEEDED] * 5, [t.error for t in done]
        assert all(t.worker_id.startswith("cpu") and t.HasField("finished_at") for t in done)
        assert done[0].result.summary.fields, "inference returns a summary"
        created = [t for t in done if t.category == "create_synthetic_data"]
        assert sum(t.spec.item_count for t in created) == 10
        assert all(t.result.artifact_uri.startswith("file://") for t in created)
        job = await client.get_job(submitted.job_id)
        assert job.progress.total == job.progress.done == 5
        assert job.state == types_pb2.JOB_STATE_SUCCEEDED

    async with authed_channel(mesh.profile_store_address, mesh.internal_token) as channel:
        store = profile_store_pb2_grpc.ProfileStoreServiceStub(channel)

        async def mlp_profiled():
            found = await store.ListProfiles(profile_store_pb2.ListProfilesRequest(model_name="mlp"))
            return [p for p in found.profiles if p.count >= 1 and p.mean_seconds > 0]

        profiles = await assert_eventually(mlp_profiled, timeout=30, msg="profile store folded the metrics")
        assert profiles[0].key.category == "inference"
        scores = await store.ListTenantScores(profile_store_pb2.ListTenantScoresRequest())
        assert "acme" in {s.tenant for s in scores.scores}


async def test_workers_registered_with_the_scheduler(mesh):
    async with authed_channel(mesh.scheduler_address, mesh.internal_token) as channel:
        workers = await scheduler_pb2_grpc.SchedulerServiceStub(channel).ListWorkers(
            scheduler_pb2.ListWorkersRequest()
        )
    assert len(workers.workers) == 1
    (worker,) = workers.workers
    assert worker.kind == types_pb2.WORKER_KIND_CPU and worker.slots == 2
    assert "inference" in worker.categories


async def test_bad_input_and_isolation(mesh):
    async with Client(mesh.classifier_address, mesh.tokens["acme"]) as acme:
        bad = types_pb2.TaskSpec(category="no_such_category", batch_size=-1)
        with pytest.raises(SwitchyardError) as err:
            await acme.submit([bad])
        assert err.value.code == "INVALID_ARGUMENT"
        fields = {v.field for v in err.value.field_violations}
        assert {"tasks[0].category", "tasks[0].batch_size"} <= fields
        with pytest.raises(SwitchyardError) as err:
            await acme.get_tasks(["task_does_not_exist"])
        assert err.value.code == "NOT_FOUND"
        mine = await acme.submit([specs.noop()])
        # the service is still fine after bad input
        assert (await acme.wait(mine.task_ids, timeout=60))[0].state == types_pb2.TASK_STATE_SUCCEEDED
    async with Client(mesh.classifier_address, mesh.tokens["globex"]) as globex:
        with pytest.raises(SwitchyardError) as err:
            await globex.get_tasks(mine.task_ids)
        assert err.value.code == "NOT_FOUND"
    async with Client(mesh.classifier_address, "sy_not-a-real-token") as stranger:
        with pytest.raises(SwitchyardError) as err:
            await stranger.get_tasks(mine.task_ids)
        assert err.value.code == "UNAUTHENTICATED"


async def test_health_of_every_service(mesh):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    for name, address in mesh.addresses.items():
        async with grpc.aio.insecure_channel(address) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, name


async def test_every_service_serves_prometheus_metrics(mesh):
    import asyncio
    import urllib.request

    def scrape(address: str) -> str:
        return urllib.request.urlopen(f"http://{address}/metrics", timeout=10).read().decode()

    assert set(mesh.metrics_addresses) == set(mesh.addresses)
    for name, address in mesh.metrics_addresses.items():
        body = await asyncio.to_thread(scrape, address)
        assert "# TYPE switchyard_rpc_total counter" in body, name
    scheduler = await asyncio.to_thread(scrape, mesh.metrics_addresses["scheduler"])
    assert 'method="ConnectWorker"' in scheduler or 'method="EnqueueTasks"' in scheduler


async def test_watch_streams_carry_the_token_and_follow_a_task_to_the_end(mesh):
    async with Client(mesh.classifier_address, mesh.tokens["globex"]) as client:
        submitted = await client.submit([specs.noop()])
        seen = [task.state async for task in client.watch_tasks(submitted.task_ids)]
        assert seen[-1] == types_pb2.TASK_STATE_SUCCEEDED
        jobs = [job async for job in client.watch_job(submitted.job_id)]
        assert jobs[-1].state == types_pb2.JOB_STATE_SUCCEEDED
