"""The Switchyard side of `bench.compare`: the mesh on a fresh PostgreSQL database, the no-op
figures (through `bench.mesh`), the mixed multi-tenant torch run, and a profile of every
process (cProfile, in-process).

Nothing here imports Ray or Celery, so the smoke test runs it without the bench extra.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import psycopg

from bench import mesh as mesh_bench
from switchyard import Client, specs
from switchyard.mesh import Mesh, MeshOptions
from switchyard.v1 import types_pb2

TENANTS = ("acme", "globex", "initech")
PROFILE_RATE_HZ = 100
# Unmeasured rounds per tenant before the mixed run (every slot warms its models).
WARMUP_ROUNDS = 2
STOP_GRACE_S = 3.0
ROOT = Path(__file__).resolve().parents[2]
OUR_CODE = ("services/", "common/", "switchyard/", "bench/")


def _create_database() -> tuple[str, str]:
    name = f"switchyard_compare_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(mesh_bench.PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, mesh_bench.PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


def _drop_database(name: str) -> None:
    with psycopg.connect(mesh_bench.PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _options(data_dir: Path, url: str) -> MeshOptions:
    # `switchyard up`'s defaults, except a short stop: shutdown is not measured, and the
    # default grace (10 s per tier) would add about a minute to every full run.
    return MeshOptions(data_dir=data_dir, database_url=url, base_port=0, grace_period_s=STOP_GRACE_S)


@asynccontextmanager
async def running_mesh() -> AsyncIterator[Mesh]:
    """The mesh as `switchyard up` starts it, on a fresh PostgreSQL database dropped after."""
    name, url = _create_database()
    try:
        with tempfile.TemporaryDirectory(prefix="switchyard-compare-") as tmp:
            async with Mesh(_options(Path(tmp), url), echo=lambda line: None) as mesh:
                yield mesh
    finally:
        _drop_database(name)


@contextmanager
def shared_mesh() -> Iterator[Mesh]:
    """One started mesh for several `asyncio.run` calls (the smoke test: one start, not three).

    Mesh needs no running event loop while idle: its services are plain child processes.
    """
    name, url = _create_database()
    try:
        with tempfile.TemporaryDirectory(prefix="switchyard-compare-") as tmp:
            mesh = Mesh(_options(Path(tmp), url), echo=lambda line: None)
            asyncio.run(mesh.start())
            try:
                yield mesh
            finally:
                asyncio.run(mesh.stop())
    finally:
        _drop_database(name)


@asynccontextmanager
async def _mesh(shared: Mesh | None) -> AsyncIterator[Mesh]:
    if shared is not None:
        yield shared
    else:
        async with running_mesh() as mesh:
            yield mesh


def _client(mesh: Mesh, tenant: str = "acme") -> Client:
    return Client(mesh.classifier_address, mesh.tokens[tenant], timeout=60)


async def noop_figures(
    throughput_tasks: int, sequential_tasks: int, shared: Mesh | None = None
) -> tuple[float, list[float]]:
    """On a fresh mesh (or `shared`): (no-op tasks/s, sequential latencies in s)."""
    async with _mesh(shared) as mesh, _client(mesh) as client:
        await mesh_bench.latencies(client, 20)  # warm up every hop once
        rate = await mesh_bench.throughput(client, throughput_tasks)
        return rate, await mesh_bench.latencies(client, sequential_tasks)


# --- the mixed run ---


def mixed_specs(rounds: int) -> list[types_pb2.TaskSpec]:
    """One tenant's share of the mixed run: `rounds` of one task per category."""
    one_round = [
        specs.inference("mlp", batch_size=16),
        specs.inference("resnet_small", precision="bf16", batch_size=4),
        specs.create_synthetic_data(items=4, batch_size=4),
        specs.preprocess(batch_size=32),
        specs.training_step("mlp", batch_size=16),
    ]
    return [spec for _ in range(rounds) for spec in one_round]


def _seconds(stamp: Any) -> float:
    return float(stamp.ToNanoseconds()) / 1e9


async def _tenant_run(mesh: Mesh, tenant: str, rounds: int) -> list[types_pb2.Task]:
    async with _client(mesh, tenant) as client:
        submitted = await client.submit(mixed_specs(rounds))
        return await client.wait(submitted.task_ids, timeout=900, poll_interval=5.0)


async def mixed_run(
    rounds: int, shared: Mesh | None = None, warmup_rounds: int = WARMUP_ROUNDS
) -> dict[str, Any]:
    """Every tenant submits `rounds` x 5 torch tasks at once; who got the devices, how fast.

    First the same workload, `warmup_rounds` per tenant, unmeasured: a slot process pays
    the first use of each model and training step once, and without a warm-up whoever
    reached the slots first would be charged those cold starts in its device time."""
    async with _mesh(shared) as mesh:
        started = time.perf_counter()
        if warmup_rounds:
            await asyncio.gather(*(_tenant_run(mesh, t, warmup_rounds) for t in TENANTS))
        warmup = time.perf_counter() - started
        started = time.perf_counter()
        runs = await asyncio.gather(*(_tenant_run(mesh, t, rounds) for t in TENANTS))
        wall = time.perf_counter() - started
    tasks = [task for run in runs for task in run]
    return summarise_mixed(tasks, wall) | {"warmup_rounds": warmup_rounds, "warmup_s": warmup}


def summarise_mixed(tasks: Sequence[types_pb2.Task], wall_s: float) -> dict[str, Any]:
    device: dict[str, float] = defaultdict(float)
    latency: dict[str, list[float]] = defaultdict(list)
    placed: dict[str, Counter[str]] = defaultdict(Counter)
    failed = [t.id for t in tasks if t.state != types_pb2.TASK_STATE_SUCCEEDED]
    for task in tasks:
        if task.HasField("started_at") and task.HasField("finished_at"):
            device[task.tenant] += _seconds(task.finished_at) - _seconds(task.started_at)
        if task.HasField("finished_at"):
            latency[task.category].append(_seconds(task.finished_at) - _seconds(task.submitted_at))
        placed[task.category][task.worker_id or "-"] += 1
    total = sum(device.values()) or 1.0
    return {
        "tasks": len(tasks),
        "failed": failed,
        "wall_s": wall_s,
        "device_s": dict(device),
        "device_share": {t: device[t] / total for t in sorted(device)},
        "latency_s": {c: sorted(v) for c, v in sorted(latency.items())},
        "placed": {c: dict(sorted(n.items())) for c, n in sorted(placed.items())},
    }
