"""The real scheduler over gRPC, on SQLite and PostgreSQL, with a scripted worker connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import grpc
import pytest
from grpc_status import rpc_status

from common.channels import authed_channel
from common.config import load_config
from common.ids import new_id
from common.timeutil import to_timestamp, utcnow
from common.tokens import verify_assignment
from services.scheduler.app import SchedulerApp
from services.scheduler.config import SchedulerConfig
from services.scheduler.model import TaskState
from switchyard.v1 import scheduler_pb2 as pb
from switchyard.v1 import scheduler_pb2_grpc, types_pb2
from tests.helpers import assert_eventually, free_port

TOKEN = "test-internal-token-0123456789"


def make_config(url: str) -> SchedulerConfig:
    return load_config(
        SchedulerConfig,
        overrides={
            "port": 0,
            "database_url": url,
            "internal_token": TOKEN,
            "profile_store_address": f"127.0.0.1:{free_port()}",
            "heartbeat_timeout_s": 3.0,
            # these tests count assignments against slots exactly; prefetch has its own test
            "worker_prefetch_per_slot": 0,
        },
    )


@pytest.fixture
async def scheduler(database_url: str) -> AsyncIterator[SchedulerApp]:
    app = SchedulerApp(make_config(database_url))
    await app.start()
    yield app
    await app.stop()


@pytest.fixture
async def stub(scheduler: SchedulerApp) -> AsyncIterator[scheduler_pb2_grpc.SchedulerServiceAsyncStub]:
    async with authed_channel(f"127.0.0.1:{scheduler.server.port}", TOKEN) as channel:
        yield scheduler_pb2_grpc.SchedulerServiceStub(channel)


def classified(tenant: str = "acme", job: str | None = None, **spec) -> types_pb2.Task:
    return types_pb2.Task(
        id=new_id("task"),
        job_id=job or new_id("job"),
        tenant=tenant,
        user="alice",
        category=spec.pop("category", "inference"),
        eligibility=spec.pop("eligibility", types_pb2.ELIGIBILITY_CPU_OR_GPU),
        priority_class=spec.pop("priority_class", 50),
        classification_rule="category:inference",
        spec=types_pb2.TaskSpec(
            category="inference", model=types_pb2.ModelRef(name="mlp"), batch_size=4, **spec
        ),
        submitted_at=to_timestamp(utcnow()),
    )


class ScriptedWorker:
    """Speaks the worker side of ConnectWorker by hand, so tests control every message."""

    def __init__(self, stub, worker_id: str = "cpu-test-1", slots: int = 2) -> None:
        self.stub = stub
        self.worker_id = worker_id
        self.slots = slots
        self.outbox: asyncio.Queue = asyncio.Queue()
        self.assignments: list[pb.Assignment] = []
        self.cancels: list[str] = []
        self.call: Any = None
        self._reader: asyncio.Task | None = None

    async def _requests(self):
        info = types_pb2.WorkerInfo(
            id=self.worker_id,
            kind=types_pb2.WORKER_KIND_CPU,
            device_model="Test CPU",
            slots=self.slots,
            free_slots=self.slots,
            categories=["inference", "noop"],
        )
        yield pb.ConnectWorkerRequest(register=pb.RegisterWorker(worker=info))
        while True:
            msg = await self.outbox.get()
            if msg is None:
                return
            yield msg

    async def connect(self) -> None:
        self.call = self.stub.ConnectWorker(self._requests())
        first = await self.call.read()
        assert first.registered.worker_id == self.worker_id
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.call:
            if msg.HasField("assignments"):
                self.assignments.extend(msg.assignments.assignments)
            elif msg.HasField("cancel"):
                self.cancels.extend(msg.cancel.task_ids)

    def finish(self, a: pb.Assignment, outcome=types_pb2.OUTCOME_SUCCEEDED, reason: str = "") -> None:
        out = pb.TaskOutcome(
            task_id=a.task.id,
            attempt=a.task.attempt,
            assignment_token=a.assignment_token,
            outcome=outcome,
            result=types_pb2.TaskResult(inline=b"done"),
        )
        if reason:
            out.error.reason, out.error.message = reason, "boom"
        started = pb.TaskStarted(
            task_id=a.task.id, attempt=a.task.attempt, assignment_token=a.assignment_token
        )
        self.outbox.put_nowait(
            pb.ConnectWorkerRequest(results=pb.TaskResults(started=[started], outcomes=[out]))
        )

    async def close(self) -> None:
        self.call.cancel()
        if self._reader:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)


async def test_task_travels_enqueue_assign_result_and_is_readable(scheduler, stub):
    task = classified()
    stored = (await stub.EnqueueTasks(pb.EnqueueTasksRequest(tasks=[task]))).tasks
    assert [t.state for t in stored] == [types_pb2.TASK_STATE_QUEUED]
    worker = ScriptedWorker(stub)
    await worker.connect()
    await assert_eventually(lambda: worker.assignments, msg="assignment arrives")
    (a,) = worker.assignments
    assert a.task.id == task.id and a.task.attempt == 1 and a.task.spec.model.name == "mlp"
    assert verify_assignment(TOKEN, a.assignment_token, task.id, 1, worker.worker_id)
    watch = stub.WatchTasks(pb.SchedulerServiceWatchTasksRequest(tenant="acme", task_ids=[task.id]))
    first = await watch.read()
    assert first.tasks[0].state == types_pb2.TASK_STATE_ASSIGNED
    worker.finish(a)
    states = []
    async for msg in watch:
        states += [t.state for t in msg.tasks]
    assert states[-1] == types_pb2.TASK_STATE_SUCCEEDED
    got = (await stub.GetTasks(pb.SchedulerServiceGetTasksRequest(tenant="acme", task_ids=[task.id]))).tasks[
        0
    ]
    assert got.result.inline == b"done" and got.worker_id == worker.worker_id and got.HasField("finished_at")
    job = (await stub.GetJob(pb.SchedulerServiceGetJobRequest(tenant="acme", job_id=task.job_id))).job
    assert job.progress.total == 1 and job.progress.done == 1 and job.state == types_pb2.JOB_STATE_SUCCEEDED
    await worker.close()


async def test_other_tenant_gets_not_found_and_bad_enqueue_names_fields(stub):
    task = classified()
    await stub.EnqueueTasks(pb.EnqueueTasksRequest(tasks=[task]))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetTasks(pb.SchedulerServiceGetTasksRequest(tenant="globex", task_ids=[task.id]))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    bad = types_pb2.Task(id="", tenant="", eligibility=types_pb2.ELIGIBILITY_UNSPECIFIED)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.EnqueueTasks(pb.EnqueueTasksRequest(tasks=[bad]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(err.value)
    from google.rpc import error_details_pb2

    fields = set()
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            br = error_details_pb2.BadRequest()
            detail.Unpack(br)
            fields = {v.field for v in br.field_violations}
    assert {"tasks[0].id", "tasks[0].tenant", "tasks[0].eligibility"} <= fields


async def test_internal_token_required(scheduler):
    async with authed_channel(f"127.0.0.1:{scheduler.server.port}", "wrong-token-000000000") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await scheduler_pb2_grpc.SchedulerServiceStub(channel).ListWorkers(pb.ListWorkersRequest())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_worker_disconnect_requeues_and_another_worker_finishes(stub):
    task = classified()
    await stub.EnqueueTasks(pb.EnqueueTasksRequest(tasks=[task]))
    first = ScriptedWorker(stub, "cpu-a")
    await first.connect()
    await assert_eventually(lambda: first.assignments, msg="first assignment")
    await first.close()
    second = ScriptedWorker(stub, "cpu-b")
    await second.connect()
    await assert_eventually(lambda: second.assignments, msg="reassigned")
    a = second.assignments[0]
    assert a.task.id == task.id and a.task.attempt == 2
    # a late result from the first attempt is discarded, the second is recorded
    second.finish(a)

    async def succeeded():
        got = await stub.GetTasks(pb.SchedulerServiceGetTasksRequest(tenant="acme", task_ids=[task.id]))
        return got.tasks[0].state == types_pb2.TASK_STATE_SUCCEEDED and got.tasks[0].worker_id == "cpu-b"

    await assert_eventually(succeeded, msg="second attempt recorded")
    await second.close()


async def test_dependencies_gate_and_failure_cascades(stub):
    parent = classified()
    child = classified(job=parent.job_id, depends_on=[parent.id])
    stored = (await stub.EnqueueTasks(pb.EnqueueTasksRequest(tasks=[parent, child]))).tasks
    assert [t.state for t in stored] == [types_pb2.TASK_STATE_QUEUED, types_pb2.TASK_STATE_PENDING]
    worker = ScriptedWorker(stub, slots=4)
    await worker.connect()
    await assert_eventually(lambda: worker.assignments, msg="parent assigned")
    assert [a.task.id for a in worker.assignments] == [parent.id]
    worker.finish(worker.assignments[0], types_pb2.OUTCOME_FAILED, "HANDLER_ERROR")

    async def child_failed():
        got = await stub.GetTasks(pb.SchedulerServiceGetTasksRequest(tenant="acme", task_ids=[child.id]))
        return (
            got.tasks[0].state == types_pb2.TASK_STATE_FAILED
            and got.tasks[0].error.reason == "DEPENDENCY_FAILED"
        )

    await assert_eventually(child_failed, msg="child fails with its dependency")
    await worker.close()


async def test_cancel_queued_and_running(stub):
    queued, running = classified(), classified()
    await stub.EnqueueTasks(pb.EnqueueTasksRequest(tasks=[running]))
    worker = ScriptedWorker(stub, slots=1)
    await worker.connect()
    await assert_eventually(lambda: worker.assignments, msg="running assigned")
    await stub.EnqueueTasks(pb.EnqueueTasksRequest(tasks=[queued]))
    out = await stub.CancelTasks(
        pb.SchedulerServiceCancelTasksRequest(tenant="acme", task_ids=[queued.id, running.id])
    )
    assert {t.state for t in out.tasks} == {types_pb2.TASK_STATE_CANCELLED}
    await assert_eventually(lambda: running.id in worker.cancels, msg="worker told to cancel")
    explained = await stub.ExplainTask(
        pb.SchedulerServiceExplainTaskRequest(tenant="acme", task_id=queued.id)
    )
    assert "CANCELLED" in explained.explanation.wait_reasons[0]
    await worker.close()


async def test_explain_breaks_down_priority_and_names_missing_workers(stub):
    task = classified(
        eligibility=types_pb2.ELIGIBILITY_GPU_ONLY, category="create_synthetic_data", priority_class=100
    )
    await stub.EnqueueTasks(pb.EnqueueTasksRequest(tasks=[task]))
    exp = (
        await stub.ExplainTask(pb.SchedulerServiceExplainTaskRequest(tenant="acme", task_id=task.id))
    ).explanation
    assert [f.name for f in exp.factors] == ["category", "qos", "fair_share", "age"]
    assert exp.factors[0].value == pytest.approx(1.0)
    assert "no eligible worker alive" in exp.wait_reasons[0]
    assert exp.queue_position == 1


async def test_idempotency_key_returns_the_first_task(stub):
    first = classified(idempotency_key="order-42")
    again = classified(idempotency_key="order-42")
    a = (await stub.EnqueueTasks(pb.EnqueueTasksRequest(tasks=[first]))).tasks[0]
    b = (await stub.EnqueueTasks(pb.EnqueueTasksRequest(tasks=[again]))).tasks[0]
    assert a.id == b.id == first.id


async def test_one_idempotency_key_in_concurrent_and_repeated_submits_makes_one_task(scheduler, stub):
    twice = [classified(idempotency_key="order-7"), classified(idempotency_key="order-7")]
    answer = await stub.EnqueueTasks(pb.EnqueueTasksRequest(tasks=twice))
    assert [t.id for t in answer.tasks] == [twice[0].id, twice[0].id]
    racing = [classified(idempotency_key="order-8") for _ in range(5)]
    answers = await asyncio.gather(
        *(stub.EnqueueTasks(pb.EnqueueTasksRequest(tasks=[t, classified()])) for t in racing)
    )
    winners = {a.tasks[0].id for a in answers}
    assert len(winners) == 1, "every submit of the key answers with the same task"
    stored = await scheduler.store.find_idempotent("acme", ["order-7", "order-8"])
    assert sorted(t.idempotency_key for t in stored) == ["order-7", "order-8"]
    assert {t.id for t in stored} == {twice[0].id, *winners}
    # The unrelated task beside each racing submit was admitted, whichever submit won.
    got = await stub.GetTasks(
        pb.SchedulerServiceGetTasksRequest(tenant="acme", task_ids=[a.tasks[1].id for a in answers])
    )
    assert len(got.tasks) == len(racing)


async def test_restart_rebuilds_queues_from_the_database(database_url):
    config = make_config(database_url)
    app = SchedulerApp(config)
    await app.start()
    tasks = [classified() for _ in range(5)]
    async with authed_channel(f"127.0.0.1:{app.server.port}", TOKEN) as channel:
        stub = scheduler_pb2_grpc.SchedulerServiceStub(channel)
        await stub.EnqueueTasks(pb.EnqueueTasksRequest(tasks=tasks))
        worker = ScriptedWorker(stub, slots=2)
        await worker.connect()
        await assert_eventually(lambda: len(worker.assignments) == 2, msg="two assigned")
        await worker.close()
    await app.stop()
    app2 = SchedulerApp(config)
    await app2.start()
    try:
        async with authed_channel(f"127.0.0.1:{app2.server.port}", TOKEN) as channel:
            stub = scheduler_pb2_grpc.SchedulerServiceStub(channel)
            ids = [t.id for t in tasks]
            got = await stub.GetTasks(pb.SchedulerServiceGetTasksRequest(tenant="acme", task_ids=ids))
            assert {t.state for t in got.tasks} == {types_pb2.TASK_STATE_QUEUED}
            worker = ScriptedWorker(stub, slots=5)
            await worker.connect()
            await assert_eventually(lambda: len(worker.assignments) == 5, msg="all five run after restart")
            assert sorted(a.task.id for a in worker.assignments) == sorted(ids)
            await worker.close()
    finally:
        await app2.stop()


def quota_tenant(name: str, **quotas) -> types_pb2.Tenant:
    return types_pb2.Tenant(name=name, share=1.0, quotas=types_pb2.TenantQuotas(**quotas))


def quota_violations(err: grpc.aio.AioRpcError) -> list[str]:
    from google.rpc import error_details_pb2

    status = rpc_status.from_call(err)
    out = []
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.QuotaFailure.DESCRIPTOR):
            qf = error_details_pb2.QuotaFailure()
            detail.Unpack(qf)
            out += [v.subject for v in qf.violations]
    return out


async def test_queued_quota_rejects_the_whole_submit_and_keeps_what_was_accepted(scheduler, stub):
    scheduler.engine.tenants.apply([quota_tenant("acme", max_queued_tasks=3)], [], snapshot=True)
    first = [classified() for _ in range(2)]
    await stub.EnqueueTasks(pb.EnqueueTasksRequest(tasks=first))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.EnqueueTasks(pb.EnqueueTasksRequest(tasks=[classified(), classified()]))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert quota_violations(err.value) == ["tenant:acme"]
    got = await stub.GetTasks(
        pb.SchedulerServiceGetTasksRequest(tenant="acme", task_ids=[t.id for t in first])
    )
    assert len(got.tasks) == 2
    # another tenant is not held back by acme's quota
    await stub.EnqueueTasks(pb.EnqueueTasksRequest(tasks=[classified("globex") for _ in range(4)]))


async def test_submit_rate_limit_with_burst(scheduler, stub):
    scheduler.engine.tenants.apply(
        [quota_tenant("acme", submit_rate_per_second=0.01, submit_burst=3)], [], True
    )
    await stub.EnqueueTasks(pb.EnqueueTasksRequest(tasks=[classified() for _ in range(3)]))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.EnqueueTasks(pb.EnqueueTasksRequest(tasks=[classified()]))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "submit rate" in (err.value.details() or "")


async def test_running_quota_holds_tasks_back_and_explains_why(scheduler, stub):
    scheduler.engine.tenants.apply([quota_tenant("acme", max_running_tasks=1)], [], snapshot=True)
    tasks = [classified() for _ in range(3)]
    await stub.EnqueueTasks(pb.EnqueueTasksRequest(tasks=tasks))
    worker = ScriptedWorker(stub, slots=3)
    await worker.connect()
    await assert_eventually(lambda: worker.assignments, msg="one assigned")
    await asyncio.sleep(0.3)
    assert len(worker.assignments) == 1
    waiting = next(t for t in tasks if t.id != worker.assignments[0].task.id)
    exp = await stub.ExplainTask(pb.SchedulerServiceExplainTaskRequest(tenant="acme", task_id=waiting.id))
    assert exp.explanation.wait_reasons[0].startswith("quota:")
    worker.finish(worker.assignments[0])
    await assert_eventually(lambda: len(worker.assignments) == 2, msg="the next one starts when a slot frees")
    await worker.close()


async def test_a_second_scheduler_waits_as_standby_and_takes_over(database_url):
    from dataclasses import replace

    from grpc_health.v1 import health_pb2, health_pb2_grpc

    config = replace(make_config(database_url), standby_wait_s=0.5)
    leader, standby = SchedulerApp(config), SchedulerApp(config)
    await leader.start()
    await standby.start()
    try:
        assert leader.engine.active and not standby.engine.active
        async with authed_channel(f"127.0.0.1:{standby.server.port}", TOKEN) as channel:
            health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
            assert health.status == health_pb2.HealthCheckResponse.NOT_SERVING
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await scheduler_pb2_grpc.SchedulerServiceStub(channel).EnqueueTasks(
                    pb.EnqueueTasksRequest(tasks=[classified()])
                )
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        task = classified()
        async with authed_channel(f"127.0.0.1:{leader.server.port}", TOKEN) as channel:
            await scheduler_pb2_grpc.SchedulerServiceStub(channel).EnqueueTasks(
                pb.EnqueueTasksRequest(tasks=[task])
            )
        both = f"127.0.0.1:{leader.server.port},127.0.0.1:{standby.server.port}"
        async with authed_channel(both, TOKEN, health_service="switchyard.v1.SchedulerService") as channel:
            either = scheduler_pb2_grpc.SchedulerServiceStub(channel)
            got = await either.GetTasks(pb.SchedulerServiceGetTasksRequest(tenant="acme", task_ids=[task.id]))
            assert got.tasks[0].id == task.id, "a client given both addresses reaches the leader"
            await leader.stop()
            await assert_eventually(lambda: standby.engine.active, timeout=30, msg="standby takes over")
            assert task.id in standby.engine.tasks, "the new leader rebuilt the queue"

            async def served_by_new_leader():
                request = pb.SchedulerServiceGetTasksRequest(tenant="acme", task_ids=[task.id])
                try:
                    return (await either.GetTasks(request, timeout=5)).tasks[0].id == task.id
                except grpc.aio.AioRpcError:
                    return False

            await assert_eventually(
                served_by_new_leader, timeout=30, msg="the same channel follows the takeover"
            )
    finally:
        await standby.stop()
        await leader.stop()


async def test_expire_on_miss_is_expired_at_admission_and_run_anyway_is_kept(stub):
    from google.protobuf import timestamp_pb2

    soon = timestamp_pb2.Timestamp()
    soon.FromNanoseconds(int((__import__("time").time() + 0.05) * 1e9))
    expire = classified(
        qos=types_pb2.Qos(deadline=soon, on_deadline_miss=types_pb2.DEADLINE_MISS_POLICY_EXPIRE)
    )
    keep = classified(
        qos=types_pb2.Qos(deadline=soon, on_deadline_miss=types_pb2.DEADLINE_MISS_POLICY_RUN_ANYWAY)
    )
    stored = (await stub.EnqueueTasks(pb.EnqueueTasksRequest(tasks=[expire, keep]))).tasks
    assert stored[0].state == types_pb2.TASK_STATE_EXPIRED
    assert stored[0].error.reason == "DEADLINE_UNREACHABLE"
    assert stored[1].state == types_pb2.TASK_STATE_QUEUED
    # RUN_ANYWAY past its deadline before it started: EXPIRED by the cycle, with the reason
    worker = ScriptedWorker(stub)
    await asyncio.sleep(0.1)
    await worker.connect()

    async def expired():
        got = await stub.GetTasks(pb.SchedulerServiceGetTasksRequest(tenant="acme", task_ids=[keep.id]))
        return (
            got.tasks[0].state == types_pb2.TASK_STATE_EXPIRED
            and got.tasks[0].error.reason == "DEADLINE_PASSED"
        )

    await assert_eventually(expired, msg="deadline passed before start")
    await worker.close()


async def test_prefetch_keeps_a_task_waiting_on_the_worker_per_slot(database_url):
    from dataclasses import replace

    app = SchedulerApp(replace(make_config(database_url), worker_prefetch_per_slot=1))
    await app.start()
    try:
        async with authed_channel(f"127.0.0.1:{app.server.port}", TOKEN) as channel:
            stub = scheduler_pb2_grpc.SchedulerServiceStub(channel)
            await stub.EnqueueTasks(pb.EnqueueTasksRequest(tasks=[classified() for _ in range(6)]))
            worker = ScriptedWorker(stub, slots=2)
            await worker.connect()
            await assert_eventually(lambda: len(worker.assignments) == 4, msg="2 slots + 2 prefetched")
            await asyncio.sleep(0.3)
            assert len(worker.assignments) == 4
            worker.finish(worker.assignments[0])
            await assert_eventually(lambda: len(worker.assignments) == 5, msg="room refilled")
            await worker.close()
    finally:
        await app.stop()


def _finish_after(worker: ScriptedWorker, a: pb.Assignment, seconds: float) -> None:
    """Finish an assignment reporting that it ran for `seconds` (worker clock)."""
    started = utcnow()
    out = pb.TaskOutcome(
        task_id=a.task.id,
        attempt=a.task.attempt,
        assignment_token=a.assignment_token,
        outcome=types_pb2.OUTCOME_SUCCEEDED,
        started_at=to_timestamp(started),
        finished_at=to_timestamp(started + timedelta(seconds=seconds)),
    )
    worker.outbox.put_nowait(pb.ConnectWorkerRequest(results=pb.TaskResults(outcomes=[out])))


@pytest.mark.parametrize(("run_s", "room"), [(0.001, 2 * (1 + 8)), (1.0, 2 * (1 + 1))])
async def test_prefetch_grows_with_short_tasks_and_keeps_its_minimum_for_long_ones(database_url, run_s, room):
    from dataclasses import replace

    config = replace(
        make_config(database_url),
        worker_prefetch_per_slot=1,
        worker_prefetch_max_per_slot=8,
        prefetch_window_s=0.02,
    )
    app = SchedulerApp(config)
    await app.start()
    try:
        async with authed_channel(f"127.0.0.1:{app.server.port}", TOKEN) as channel:
            stub = scheduler_pb2_grpc.SchedulerServiceStub(channel)
            await stub.EnqueueTasks(pb.EnqueueTasksRequest(tasks=[classified() for _ in range(60)]))
            worker = ScriptedWorker(stub, slots=2)
            await worker.connect()
            await assert_eventually(lambda: len(worker.assignments) == 4, msg="2 slots + 2 prefetched")
            for a in list(worker.assignments[:3]):
                _finish_after(worker, a, run_s)
            held = lambda: len(worker.assignments) - 3  # noqa: E731
            await assert_eventually(lambda: held() == room, msg=f"{room} held")
            await asyncio.sleep(0.3)
            assert held() == room
            await worker.close()
    finally:
        await app.stop()


async def test_tasks_whose_insert_fails_are_withdrawn_from_the_worker(scheduler, stub):
    worker = ScriptedWorker(stub, slots=2)
    await worker.connect()
    commit = scheduler.store.commit
    release = asyncio.Event()

    async def failing(inserts, jobs, updates):
        if inserts:
            await release.wait()  # the task is placed and dispatched meanwhile
            raise RuntimeError("database refused the insert")
        await commit(inserts, jobs, updates)

    scheduler.store.commit = failing  # type: ignore[method-assign]
    task = classified()
    enqueue = asyncio.ensure_future(stub.EnqueueTasks(pb.EnqueueTasksRequest(tasks=[task])))
    await assert_eventually(lambda: [a.task.id for a in worker.assignments] == [task.id], msg="dispatched")
    a = worker.assignments[0]
    started = pb.TaskStarted(task_id=task.id, attempt=a.task.attempt, assignment_token=a.assignment_token)
    worker.outbox.put_nowait(pb.ConnectWorkerRequest(results=pb.TaskResults(started=[started])))
    await assert_eventually(
        lambda: scheduler.engine.tasks[task.id].state == TaskState.RUNNING, msg="running before its insert"
    )
    release.set()
    with pytest.raises(grpc.aio.AioRpcError):
        await enqueue
    await assert_eventually(lambda: worker.cancels == [task.id], msg="withdrawn from the worker")
    assert "acme" not in scheduler.profiles.usage(scheduler.clock.now()), "no in-flight charge left behind"
    scheduler.store.commit = commit  # type: ignore[method-assign]
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.GetTasks(pb.SchedulerServiceGetTasksRequest(tenant="acme", task_ids=[task.id]))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    await worker.close()


async def test_a_running_task_charges_its_tenant_in_flight_until_it_finishes(scheduler, stub):
    task = classified(tenant="globex")
    await stub.EnqueueTasks(pb.EnqueueTasksRequest(tasks=[task]))
    worker = ScriptedWorker(stub, slots=1)
    await worker.connect()
    await assert_eventually(lambda: worker.assignments, msg="assigned")
    a = worker.assignments[0]
    began = utcnow() - timedelta(seconds=60)
    started = pb.TaskStarted(
        task_id=a.task.id,
        attempt=a.task.attempt,
        assignment_token=a.assignment_token,
        started_at=to_timestamp(began),
    )
    worker.outbox.put_nowait(pb.ConnectWorkerRequest(results=pb.TaskResults(started=[started])))
    now = scheduler.clock.now
    heard = now()
    await assert_eventually(lambda: "globex" in scheduler.profiles.usage(now()), msg="charged in flight")
    await asyncio.sleep(0.2)
    # From when the scheduler heard of the start (its own clock), not the worker's stamp.
    assert 0.2 <= scheduler.profiles.usage(now())["globex"] <= now() - heard
    worker.finish(a)
    await assert_eventually(lambda: scheduler.engine.tasks.get(task.id) is None, msg="finished and forgotten")
    usage = scheduler.profiles.usage(now())
    # Done, it is charged once, from the start the worker stamped (60 s and a little).
    assert 60.0 <= usage["globex"] < 90.0
    await worker.close()


async def test_a_task_just_finished_is_read_from_memory_and_other_tenants_still_get_not_found(
    scheduler, stub, monkeypatch
):
    scheduler.engine.recent_max = 2
    worker = ScriptedWorker(stub, slots=4)
    await worker.connect()
    tasks = [classified() for _ in range(3)]
    await stub.EnqueueTasks(pb.EnqueueTasksRequest(tasks=tasks))
    await assert_eventually(lambda: len(worker.assignments) == 3, msg="all three assigned")
    for a in worker.assignments:
        worker.finish(a)
    engine = scheduler.engine
    await assert_eventually(lambda: not engine.tasks, msg="all three finished and written")
    assert list(engine.recent) == [t.id for t in tasks[1:]]  # the oldest made room

    async def no_database(task_ids):
        raise AssertionError(f"read {task_ids} from the database")

    monkeypatch.setattr(scheduler.store, "get", no_database)
    request = pb.SchedulerServiceGetTasksRequest(tenant="acme", task_ids=[tasks[2].id])
    got = (await stub.GetTasks(request)).tasks
    assert [t.state for t in got] == [types_pb2.TASK_STATE_SUCCEEDED] and got[0].result.inline == b"done"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetTasks(pb.SchedulerServiceGetTasksRequest(tenant="globex", task_ids=[tasks[2].id]))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    await worker.close()


async def test_a_start_and_finish_in_one_message_skip_running_but_keep_the_start(scheduler, stub):
    worker = ScriptedWorker(stub)
    await worker.connect()
    quick, slow = classified(), classified()
    await stub.EnqueueTasks(pb.EnqueueTasksRequest(tasks=[quick, slow]))
    await assert_eventually(lambda: len(worker.assignments) == 2, msg="both assigned")
    by_id = {a.task.id: a for a in worker.assignments}
    watch = stub.WatchTasks(pb.SchedulerServiceWatchTasksRequest(tenant="acme", task_ids=[quick.id, slow.id]))
    seen: dict[str, list[int]] = {quick.id: [], slow.id: []}

    async def follow():
        async for msg in watch:
            for t in msg.tasks:
                seen[t.id].append(t.state)

    follower = asyncio.create_task(follow())
    a = by_id[slow.id]
    started = pb.TaskStarted(task_id=a.task.id, attempt=a.task.attempt, assignment_token=a.assignment_token)
    worker.outbox.put_nowait(pb.ConnectWorkerRequest(results=pb.TaskResults(started=[started])))
    await assert_eventually(
        lambda: scheduler.engine.tasks[slow.id].state.name == "RUNNING", msg="slow one running"
    )
    await scheduler.engine.committer.flush()
    worker.finish(by_id[quick.id])  # started and finished in one message
    worker.finish(by_id[slow.id])
    await asyncio.wait_for(follower, 10)
    assert types_pb2.TASK_STATE_RUNNING not in seen[quick.id]
    assert types_pb2.TASK_STATE_RUNNING in seen[slow.id]
    assert seen[quick.id][-1] == seen[slow.id][-1] == types_pb2.TASK_STATE_SUCCEEDED
    request = pb.SchedulerServiceGetTasksRequest(tenant="acme", task_ids=[quick.id])
    (got,) = (await stub.GetTasks(request)).tasks
    assert got.HasField("started_at") and got.started_at.ToNanoseconds() <= got.finished_at.ToNanoseconds()
    await worker.close()
