"""The Switchyard side of `bench.compare`: the mesh on a fresh PostgreSQL database, the no-op
figures (through `bench.mesh`), the mixed multi-tenant torch run, and a py-spy profile.

Nothing here imports Ray or Celery, so the smoke test runs it without the bench extra.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from bench import mesh as mesh_bench
from switchyard import Client, specs
from switchyard.mesh import Mesh, MeshOptions
from switchyard.v1 import types_pb2

TENANTS = ("acme", "globex", "initech")
PROFILE_RATE_HZ = 100
OUR_CODE = ("services/", "common/", "switchyard/", "bench/")


@asynccontextmanager
async def running_mesh(*, log_dir: Path | None = None) -> AsyncIterator[Mesh]:
    """The mesh as `switchyard up` starts it, on a fresh PostgreSQL database dropped after."""
    name = f"switchyard_compare_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(mesh_bench.PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = mesh_bench.PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    try:
        with tempfile.TemporaryDirectory(prefix="switchyard-compare-") as tmp:
            options = MeshOptions(data_dir=log_dir or Path(tmp), database_url=url, base_port=0)
            async with Mesh(options, echo=lambda line: None) as mesh:
                yield mesh
    finally:
        with psycopg.connect(mesh_bench.PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def noop_figures(throughput_tasks: int, sequential_tasks: int) -> tuple[float, list[float]]:
    """One fresh mesh: (no-op tasks/s, sequential latencies in s)."""
    async with (
        running_mesh() as mesh,
        Client(mesh.classifier_address, mesh.tokens["acme"], timeout=60) as client,
    ):
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
    async with Client(mesh.classifier_address, mesh.tokens[tenant], timeout=60) as client:
        submitted = await client.submit(mixed_specs(rounds))
        return await client.wait(submitted.task_ids, timeout=900, poll_interval=5.0)


async def mixed_run(rounds: int) -> dict[str, Any]:
    """Every tenant submits `rounds` x 5 torch tasks at once; who got the devices, how fast."""
    async with running_mesh() as mesh:
        started = time.perf_counter()
        runs = await asyncio.gather(*(_tenant_run(mesh, t, rounds) for t in TENANTS))
        wall = time.perf_counter() - started
    tasks = [task for run in runs for task in run]
    return summarise_mixed(tasks, wall)


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


# --- the profile ---


@dataclass
class Recording:
    name: str
    process: subprocess.Popen[bytes]
    path: Path


def _start_py_spy(py_spy: str, name: str, pid: int, out_dir: Path) -> Recording:
    path = out_dir / f"{name}.txt"
    argv = [py_spy, "record", "--pid", str(pid), "--format", "raw", "--output", str(path)]
    argv += ["--rate", str(PROFILE_RATE_HZ), "--subprocesses", "--nonblocking"]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return Recording(name, process, path)


def _stop_py_spy(recording: Recording) -> None:
    recording.process.send_signal(signal.SIGINT)
    try:
        recording.process.wait(30)
    except subprocess.TimeoutExpired:
        recording.process.kill()
        recording.process.wait()


async def profiled_throughput(tasks: int, out_dir: Path) -> dict[str, Any]:
    """A no-op throughput run with py-spy sampling every service and this client."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        return {"error": "py-spy is not installed (pip install the bench extra)"}
    out_dir.mkdir(parents=True, exist_ok=True)
    async with (
        running_mesh() as mesh,
        Client(mesh.classifier_address, mesh.tokens["acme"], timeout=60) as client,
    ):
        await mesh_bench.latencies(client, 20)
        targets = {name: child.pid for name, child in mesh.processes.items()} | {"client": os.getpid()}
        recordings = [_start_py_spy(py_spy, name, pid, out_dir) for name, pid in targets.items()]
        await asyncio.sleep(1.0)  # let py-spy attach before the first submit
        try:
            rate = await mesh_bench.throughput(client, tasks)
        finally:
            for recording in recordings:
                await asyncio.to_thread(_stop_py_spy, recording)
    return {"tasks_per_s": rate, "services": {r.name: summarise_profile(r.path) for r in recordings}}


def _frame(raw: str) -> tuple[str, str]:
    """'func (path/to/module.py:12)' → ('func', 'module path without the venv prefix')."""
    func, _, where = raw.rpartition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("/site-packages/", "/work/main/", f"{Path.cwd()}/", "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return func or raw, path


def summarise_profile(path: Path, top: int = 8) -> dict[str, Any]:
    """Samples; the functions with most self samples; of our own code (services/, common/,
    switchyard/, bench/), the deepest frame per sample and the inclusive counts."""
    own: Counter[str] = Counter()
    deepest: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    samples = 0
    lines = path.read_text().splitlines() if path.exists() else []
    for line in lines:
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";") if " (" in f]
        if not frames:
            continue
        samples += count
        own[f"{frames[-1][0]} ({frames[-1][1]})"] += count
        ours = [f"{f} ({p})" for f, p in frames if p.startswith(OUR_CODE)]
        if ours:
            deepest[ours[-1]] += count
        for name in set(ours):
            inclusive[name] += count
    return {
        "samples": samples,
        "cpu_s": samples / PROFILE_RATE_HZ,
        "self": own.most_common(top),
        "deepest": deepest.most_common(top),
        "inclusive": inclusive.most_common(top),
    }
