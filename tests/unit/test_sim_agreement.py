"""Agreement with the live scheduler: the same workers and the same few hundred tasks queued
at one instant get the same assignments from the live first placement cycles as from the
simulator's (DESIGN §4: one policy, two drivers)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from common.channels import authed_channel
from common.config import load_config
from services.scheduler.app import SchedulerApp
from services.scheduler.config import SchedulerConfig
from services.scheduler.core.clock import ManualClock
from services.scheduler.core.model import (
    Group,
    Kind,
    ProfileEstimate,
    ProfileKey,
    QosClass,
    TaskDemand,
    WorkerSlots,
)
from services.scheduler.core.placement import batch_bucket
from services.scheduler.simulator import (
    POLICIES,
    Arrival,
    Cluster,
    Scenario,
    SpeedTable,
    Workload,
    first_placements,
)
from services.scheduler.simulator.accounting import SpeedProfiles, mean_work
from switchyard.v1 import scheduler_pb2 as pb
from switchyard.v1 import scheduler_pb2_grpc, types_pb2
from tests.helpers import assert_eventually, free_port

TOKEN = "test-internal-token-0123456789"
SPEEDS = SpeedTable(devices={"H100": 2.0, "A10": 0.5, "Xeon": 1.0}, per_category={("Xeon", "inference"): 0.1})
CATEGORIES = [("inference", Group.CPU_OR_GPU, 70), ("create_synthetic_data", Group.GPU_ONLY, 100)]
CATEGORIES += [("ingest_source_assets", Group.CPU_ONLY, 50), ("preprocess", Group.CPU_OR_GPU, 40)]


def workers() -> list[WorkerSlots]:
    out = []
    shapes = [(Kind.GPU, "A10", 4), (Kind.CPU, "Xeon", 8), (Kind.GPU, "H100", 2), (Kind.GPU, "A10", 4)]
    shapes += [(Kind.CPU, "Xeon", 6), (Kind.GPU, "H100", 3), (Kind.CPU, "Xeon", 8)]
    for i, (kind, model, slots) in enumerate(shapes):
        out.append(WorkerSlots(f"w{i}-{model.lower()}", kind, model, slots, slots))
    return out


def arrivals(n: int = 300, seed: int = 11) -> list[Arrival]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        category, group, prio = rng.choice(CATEGORIES)
        demand = TaskDemand(
            task_id=f"task-{i:04d}",
            tenant=rng.choice(["acme", "globex", "initech"]),
            category=category,
            group=group,
            priority_class=prio,
            qos_class=rng.choice([QosClass.LATENCY_CRITICAL, QosClass.STANDARD, QosClass.BATCH]),
            model=rng.choice(["mlp", "cnn"]),
            precision=1,
            batch_size=rng.choice([1, 4, 16]),
            enqueued_at=0.0,
        )
        out.append(Arrival(demand, rng.uniform(0.5, 5.0)))
    return out


def to_proto(a: Arrival) -> types_pb2.Task:
    d = a.demand
    return types_pb2.Task(
        id=d.task_id,
        job_id=f"job-{d.tenant}",
        tenant=d.tenant,
        user="alice",
        category=d.category,
        eligibility=int(d.group),  # type: ignore[arg-type]
        priority_class=d.priority_class,
        classification_rule=f"category:{d.category}",
        spec=types_pb2.TaskSpec(
            category=d.category,
            model=types_pb2.ModelRef(name=d.model),
            precision=d.precision,  # type: ignore[arg-type]
            batch_size=d.batch_size,
            qos=types_pb2.Qos(qos_class=int(d.qos_class)),  # type: ignore[arg-type]
        ),
    )


class Worker:
    """The worker side of ConnectWorker: register, then collect assignments."""

    def __init__(self, stub: Any, slots: WorkerSlots) -> None:
        self.stub, self.slots = stub, slots
        self.assignments: list[str] = []
        self.outbox: asyncio.Queue[Any] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None

    async def _requests(self) -> AsyncIterator[pb.ConnectWorkerRequest]:
        w = self.slots
        info = types_pb2.WorkerInfo(
            id=w.worker_id,
            kind=int(w.kind),  # type: ignore[arg-type]
            device_model=w.device_model,
            slots=w.slots,
            free_slots=w.slots,
        )
        yield pb.ConnectWorkerRequest(register=pb.RegisterWorker(worker=info))
        while (msg := await self.outbox.get()) is not None:
            yield msg

    async def connect(self) -> None:
        self.call = self.stub.ConnectWorker(self._requests())
        first = await self.call.read()
        assert first.registered.worker_id == self.slots.worker_id
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.call:
            if msg.HasField("assignments"):
                self.assignments.extend(a.task.id for a in msg.assignments.assignments)

    async def close(self) -> None:
        self.call.cancel()
        if self._reader:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)


def profile_table(tasks: list[Arrival], fleet: list[WorkerSlots]) -> dict[ProfileKey, ProfileEstimate]:
    """The simulator's pre-warmed profiles, spelled out for the live scheduler's cache."""
    estimator = SpeedProfiles(SPEEDS, mean_work(tasks))
    table = {}
    for a in tasks:
        d = a.demand
        for w in fleet:
            key = ProfileKey(w.device_model, d.model, d.precision, batch_bucket(d.batch_size), d.category)
            found = estimator.estimate(key)
            assert found is not None
            table[key] = found
    return table


async def test_live_first_cycles_match_the_simulator(tmp_path: Path):
    tasks, fleet = arrivals(), workers()
    assert sum(w.slots for w in fleet) < len(tasks)  # order decides who is placed
    scenario = Scenario(
        "agreement", Cluster(fleet), Workload("a", lambda: tasks, mean_work=mean_work(tasks)), SPEEDS
    )
    expected = first_placements(scenario, POLICIES["switchyard"](0))
    assert len(expected) == sum(w.slots for w in fleet)

    config = load_config(
        SchedulerConfig,
        overrides={
            "port": 0,
            "database_url": f"sqlite:///{tmp_path / 'sched.db'}",
            "internal_token": TOKEN,
            "profile_store_address": f"127.0.0.1:{free_port()}",
            "classifier_address": f"127.0.0.1:{free_port()}",
            "heartbeat_timeout_s": 120.0,
            "reprioritize_interval_s": 3600.0,
            # The simulator models slots, not the assignments a worker prefetches per slot.
            "worker_prefetch_per_slot": 0,
        },
    )
    # A frozen clock: the live engine takes `enqueued_at` before the durable insert and the
    # push's `now` after it, so on a running clock later tasks of one batch get a slightly
    # larger age factor and equal priorities would break ties newest-first.
    app = SchedulerApp(config, clock=ManualClock())
    await app.start()
    # Hold the placement loop until every worker has registered, so that the first live
    # cycle sees the whole fleet at one instant, as the simulator's does.
    gate = asyncio.Event()
    run_cycle = app.engine.run_cycle

    async def gated() -> int:
        await gate.wait()
        return await run_cycle()

    app.engine.run_cycle = gated  # type: ignore[method-assign]
    app.profiles.profiles.update(profile_table(tasks, fleet))
    connected: list[Worker] = []
    try:
        async with authed_channel(f"127.0.0.1:{app.server.port}", TOKEN) as channel:
            stub = scheduler_pb2_grpc.SchedulerServiceStub(channel)
            await stub.EnqueueTasks(pb.EnqueueTasksRequest(tasks=[to_proto(a) for a in tasks]))
            for w in fleet:
                worker = Worker(stub, w)
                await worker.connect()
                connected.append(worker)
            gate.set()
            total = len(expected)
            await assert_eventually(
                lambda: sum(len(w.assignments) for w in connected) >= total, msg="every slot assigned"
            )
            await asyncio.sleep(0.2)  # a later cycle must not place more
            live = {tid: c.slots.worker_id for c in connected for tid in c.assignments}
            for c in connected:
                await c.close()
    finally:
        gate.set()
        await app.stop()
    assert live == dict(expected)
