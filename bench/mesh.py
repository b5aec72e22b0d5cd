"""End-to-end figures through the whole mesh on PostgreSQL (DESIGN §9).

- Throughput: no-op tasks, submitted in batches through the SDK the way a platform backend
  would, from the first submit to the last terminal result the client sees; the mesh as
  `switchyard up` starts it (its default workers and slots), PostgreSQL at its default
  durability (synchronous_commit=on), the profile store ingesting every metric.
- Latency: one task at a time, submit → terminal result seen by the client.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

from bench.baselines.switchyard_profile import _proc_stats, cpu_seconds
from bench.report import header, spread, write
from switchyard import Client, specs
from switchyard.mesh import Mesh, MeshOptions
from switchyard.v1 import types_pb2

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
THROUGHPUT_TASKS = 2_000
BATCH = 500
SEQUENTIAL_TASKS = 200
REPEATS = 3


async def throughput(client: Client, n: int) -> float:
    started = time.perf_counter()
    ids: list[str] = []
    for offset in range(0, n, BATCH):
        submitted = await client.submit([specs.noop() for _ in range(min(BATCH, n - offset))])
        ids += submitted.task_ids
    done = await client.wait(ids, timeout=600, poll_interval=5.0)
    elapsed = time.perf_counter() - started
    assert all(t.state == types_pb2.TASK_STATE_SUCCEEDED for t in done)
    return n / elapsed


async def latencies(client: Client, n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        submitted = await client.submit([specs.noop()])
        (task,) = await client.wait(submitted, timeout=60, poll_interval=5.0)
        assert task.state == types_pb2.TASK_STATE_SUCCEEDED
        out.append(time.perf_counter() - started)
    return out


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure() -> dict[str, Any]:
    name = f"switchyard_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    rates: list[float] = []
    # CPU ms per task of each process during the throughput runs (from /proc).
    cpu_ms: dict[str, list[float]] = {}
    p50s: list[float] = []
    p99s: list[float] = []
    try:
        with tempfile.TemporaryDirectory(prefix="switchyard-bench-") as tmp:
            options = MeshOptions(data_dir=Path(tmp), database_url=url, base_port=0, log_format="json")
            mesh = Mesh(options, echo=lambda line: None)
            await mesh.start()
            try:
                async with Client(mesh.classifier_address, mesh.tokens["acme"], timeout=60) as client:
                    await latencies(client, 20)  # warm up every hop once
                    for _ in range(REPEATS):
                        before = _proc_stats()
                        rates.append(await throughput(client, THROUGHPUT_TASKS))
                        for process, seconds in cpu_seconds(before, mesh).items():
                            cpu_ms.setdefault(process, []).append(seconds * 1000 / THROUGHPUT_TASKS)
                        lat = await latencies(client, SEQUENTIAL_TASKS)
                        p50s.append(_percentile(lat, 0.50) * 1000)
                        p99s.append(_percentile(lat, 0.99) * 1000)
                        print(f"mesh: {rates[-1]:,.0f} tasks/s, p50 {p50s[-1]:.1f} ms, p99 {p99s[-1]:.1f} ms")
            finally:
                await mesh.stop()
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return {
        "throughput_tasks_per_s": rates,
        "latency_p50_ms": p50s,
        "latency_p99_ms": p99s,
        "cpu_ms_per_task": cpu_ms,
    }


def main() -> int:
    data = asyncio.run(measure())
    lines = header(
        "The whole mesh on PostgreSQL: no-op throughput and sequential latency",
        "make bench BENCH=mesh   (python -m bench.run mesh)",
        [
            f"{THROUGHPUT_TASKS:,} no-op tasks submitted in batches of {BATCH} through the SDK, first submit",
            "to the last terminal result seen by the client; then",
            f"{SEQUENTIAL_TASKS} sequential single tasks (submit → terminal result). The mesh as",
            "`switchyard up` starts it (2 CPU workers, default slots), PostgreSQL with",
            "synchronous_commit=on, metrics ingested by the profile store. "
            f"{REPEATS} runs: median (min-max).",
        ],
    )
    lines += [
        "| figure | value |",
        "|---|---:|",
        f"| throughput, tasks/s | {spread(data['throughput_tasks_per_s'])} |",
        f"| sequential latency p50, ms | {spread(data['latency_p50_ms'], ',.1f')} |",
        f"| sequential latency p99, ms | {spread(data['latency_p99_ms'], ',.1f')} |",
        "",
        "CPU per task during the throughput runs, ms (from /proc; `cpu-1` and `cpu-2` are the",
        "workers, their slot processes included; `other`, every process outside the mesh,",
        "whatever else runs on the machine included, is left out):",
        "",
        "| process | CPU ms per task |",
        "|---|---:|",
    ]
    cpu = {name: ms for name, ms in data["cpu_ms_per_task"].items() if name != "other"}
    for name, ms in sorted(cpu.items(), key=lambda kv: -statistics.median(kv[1])):
        lines.append(f"| {name} | {spread(ms, ',.3f')} |")
    if cpu:
        totals = [sum(run) for run in zip(*cpu.values(), strict=False)]
        lines.append(f"| all of the mesh | {spread(totals, ',.3f')} |")
    print("\n".join(lines))
    print(f"report: {write('mesh', lines, data)}")
    return 0
