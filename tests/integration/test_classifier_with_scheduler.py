"""The classifier in front of the REAL scheduler over gRPC: classification, batch
splitting and tenant isolation end to end (on SQLite and PostgreSQL).

The scheduler follows the classifier's WatchTenants stream, as in the mesh; quota
enforcement itself is the scheduler's and is tested there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from common.config import load_config
from common.db import is_postgres
from services.classifier.admin import seed_demo_tenants
from services.classifier.app import ClassifierApp
from services.classifier.config import ClassifierConfig
from services.scheduler.app import SchedulerApp
from services.scheduler.config import SchedulerConfig
from switchyard.v1 import classifier_pb2, classifier_pb2_grpc, types_pb2
from tests.helpers import assert_eventually, free_port

INTERNAL = "front-door-internal-token-0123"
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 32 << 20), ("grpc.max_send_message_length", 64 << 20)]


@dataclass
class FrontDoor:
    classifier: ClassifierApp
    scheduler: SchedulerApp
    channel: grpc.aio.Channel
    stub: classifier_pb2_grpc.ClassifierServiceAsyncStub
    tokens: dict[str, str]

    def auth(self, tenant: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.tokens[tenant]}"),)

    async def close(self) -> None:
        await self.channel.close()
        await self.classifier.stop()
        await self.scheduler.stop()


async def start_front_door(classifier_url: str, scheduler_url: str, **limits: Any) -> FrontDoor:
    """A real SchedulerApp and ClassifierApp on loopback ports, tenants seeded."""
    classifier_port = free_port()
    scheduler = SchedulerApp(
        load_config(
            SchedulerConfig,
            overrides={
                "port": 0,
                "database_url": scheduler_url,
                "internal_token": INTERNAL,
                "profile_store_address": f"127.0.0.1:{free_port()}",
                "classifier_address": f"127.0.0.1:{classifier_port}",
                "log_level": "WARNING",
            },
        )
    )
    await scheduler.start()
    tokens = seed_demo_tenants(classifier_url)
    config = ClassifierConfig(
        port=classifier_port,
        database_url=classifier_url,
        scheduler_address=f"127.0.0.1:{scheduler.server.port}",
        internal_token=INTERNAL,
        grace_period_s=0,
        log_level="WARNING",
        tenant_watch_poll_s=0.2,
        **limits,
    )
    classifier = ClassifierApp(config)
    await classifier.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{classifier.server.port}", options=CHANNEL_OPTIONS)
    stub = classifier_pb2_grpc.ClassifierServiceStub(channel)
    return FrontDoor(classifier, scheduler, channel, stub, tokens)


def urls(database_url: str, tmp_path: Path) -> tuple[str, str]:
    """The classifier's and the scheduler's database: one PostgreSQL database, or two files."""
    if is_postgres(database_url):
        return database_url, database_url
    return f"sqlite:///{tmp_path / 'classifier.db'}", f"sqlite:///{tmp_path / 'scheduler.db'}"


@pytest.fixture
async def door(database_url: str, tmp_path: Path) -> AsyncIterator[FrontDoor]:
    started = await start_front_door(*urls(database_url, tmp_path))
    yield started
    await started.close()


async def test_classified_tasks_are_stored_by_the_scheduler(door: FrontDoor) -> None:
    specs = [
        types_pb2.TaskSpec(category="create_synthetic_data", item_count=4),
        types_pb2.TaskSpec(category="ingest_source_assets"),
        types_pb2.TaskSpec(category="inference", precision=types_pb2.PRECISION_FP16),
        types_pb2.TaskSpec(category="inference", precision=types_pb2.PRECISION_INT8),
        types_pb2.TaskSpec(category="preprocess"),
    ]
    reply = await door.stub.SubmitTasks(
        classifier_pb2.SubmitTasksRequest(tasks=specs), metadata=door.auth("acme")
    )
    ids = [t.id for t in reply.tasks]
    got = await door.stub.GetTasks(classifier_pb2.GetTasksRequest(task_ids=ids), metadata=door.auth("acme"))
    assert [(t.eligibility, t.classification_rule) for t in got.tasks] == [
        (types_pb2.ELIGIBILITY_GPU_ONLY, "category:create_synthetic_data"),
        (types_pb2.ELIGIBILITY_CPU_ONLY, "category:ingest_source_assets"),
        (types_pb2.ELIGIBILITY_GPU_ONLY, "constraint:precision=fp16"),
        (types_pb2.ELIGIBILITY_CPU_ONLY, "constraint:precision=int8"),
        (types_pb2.ELIGIBILITY_CPU_OR_GPU, "category:preprocess"),
    ]
    assert {(t.tenant, t.user, t.job_id, t.state) for t in got.tasks} == {
        ("acme", "alice", reply.job_id, types_pb2.TASK_STATE_QUEUED)
    }
    assert got.tasks[0].priority_class > max(t.priority_class for t in got.tasks[1:])
    job = await door.stub.GetJob(
        classifier_pb2.GetJobRequest(job_id=reply.job_id), metadata=door.auth("acme")
    )
    assert job.job.progress.total == 5


async def test_a_split_becomes_one_job_of_batches(door: FrontDoor) -> None:
    split = types_pb2.SplitRequest(
        template=types_pb2.TaskSpec(category="create_synthetic_data", idempotency_key="render-7"),
        total_items=1000,
        batch_size=64,
    )
    reply = await door.stub.SubmitTasks(
        classifier_pb2.SubmitTasksRequest(tasks=[types_pb2.TaskSpec(category="noop")], split=split),
        metadata=door.auth("globex"),
    )
    assert len(reply.tasks) == 1 + 16
    listed = await door.stub.ListTasks(
        classifier_pb2.ListTasksRequest(job_id=reply.job_id, page_size=100), metadata=door.auth("globex")
    )
    batches = sorted(
        (t for t in listed.tasks if t.category == "create_synthetic_data"),
        key=lambda t: int(t.spec.labels["split_index"]),
    )
    assert [t.spec.item_count for t in batches] == [64] * 15 + [40]
    assert sum(t.spec.item_count for t in batches) == 1000
    assert [t.spec.idempotency_key for t in batches][-1] == "render-7#15"
    # Resubmitting the same split is idempotent: the scheduler hands back the stored batches.
    again = await door.stub.SubmitTasks(
        classifier_pb2.SubmitTasksRequest(split=split), metadata=door.auth("globex")
    )
    assert [t.id for t in again.tasks] == [t.id for t in reply.tasks[1:]]


async def test_tenants_see_and_cancel_only_their_own_tasks(door: FrontDoor) -> None:
    acme, globex = door.auth("acme"), door.auth("globex")
    mine = await door.stub.SubmitTasks(
        classifier_pb2.SubmitTasksRequest(tasks=[types_pb2.TaskSpec(category="noop")]), metadata=acme
    )
    task_id = mine.tasks[0].id
    for call in (
        door.stub.GetTasks(classifier_pb2.GetTasksRequest(task_ids=[task_id]), metadata=globex),
        door.stub.CancelTasks(classifier_pb2.CancelTasksRequest(task_ids=[task_id]), metadata=globex),
        door.stub.GetJob(classifier_pb2.GetJobRequest(job_id=mine.job_id), metadata=globex),
        door.stub.ExplainTask(classifier_pb2.ExplainTaskRequest(task_id=task_id), metadata=globex),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await call
        assert exc.value.code() == grpc.StatusCode.NOT_FOUND
    listed = await door.stub.ListTasks(classifier_pb2.ListTasksRequest(), metadata=globex)
    assert task_id not in {t.id for t in listed.tasks}
    # Depending on another tenant's task is refused as an unknown task.
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await door.stub.SubmitTasks(
            classifier_pb2.SubmitTasksRequest(
                tasks=[types_pb2.TaskSpec(category="noop", depends_on=[task_id])]
            ),
            metadata=globex,
        )
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    cancelled = await door.stub.CancelTasks(
        classifier_pb2.CancelTasksRequest(task_ids=[task_id]), metadata=acme
    )
    assert cancelled.tasks[0].state == types_pb2.TASK_STATE_CANCELLED


async def test_the_scheduler_follows_the_registry(door: FrontDoor) -> None:
    assert door.classifier.store is not None
    await door.classifier.store.create_tenant("umbrella", 3.0)
    book = door.scheduler.engine.tenants
    await assert_eventually(lambda: book.shares.get("umbrella") == 3.0, timeout=10, msg="share not followed")
