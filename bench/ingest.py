"""Ingest rate of the profile store on PostgreSQL (DESIGN §9), beside the ceiling.

Metrics go through the real `IngestMetrics` stream (grpc.aio client, pipelined batches)
into a real `ProfileStoreApp` on port 0, in a database created for the run and dropped
after it; the figure is acknowledged metrics per second, from the first write to the last
ack. In the same run, the same rows go into a plain copy of the samples table (same
columns and indexes, no profiles, no usage) by batched INSERT (psycopg executemany,
pipelined) and by COPY, one transaction per request-sized batch, and by COPY in
transactions as large as the service's largest group commit: the ceiling. The service
pass settles the garbage collector after building the app, as the service process does
(`common.server.settle_gc`), and gives it back before the baselines. A last ingest pass
runs under pyinstrument to show where the time goes.

    python -m bench.ingest [--metrics N] [--batch B] [--repeats R]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg

from bench.ingest_report import GOAL, report, shares
from bench.report import write
from common import db
from common.channels import authed_channel
from common.server import settle_gc
from common.tokens import sign_assignment
from services.profile_store import convert
from services.profile_store.app import MIGRATIONS, SCHEMA, ProfileStoreApp
from services.profile_store.config import ProfileStoreConfig
from services.profile_store.group_commit import DEFAULT_MAX_METRICS
from services.profile_store.rows import SAMPLES, sample_row
from switchyard.v1 import profile_store_pb2, profile_store_pb2_grpc, types_pb2

PG_ADMIN = os.environ.get("SWITCHYARD_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
TOKEN = "bench-internal-token"
GROUP_MAX = DEFAULT_MAX_METRICS
DEVICES = [("gpu", "NVIDIA H100"), ("gpu", "NVIDIA A10"), ("cpu", "Xeon 8480"), ("cpu", "EPYC 9654")]
MODELS = ["mlp", "resnet_small", "transformer_encoder", "unet", "vit_tiny"]
PRECISIONS = [types_pb2.PRECISION_FP32, types_pb2.PRECISION_BF16, types_pb2.PRECISION_FP16]
COLUMNS = [c.name for c in SAMPLES.columns]


def build_metrics(n: int, run: int = 25) -> list[types_pb2.ResultMetrics]:
    """n signed metrics over 16 workers, 4 device models, 5 models, 3 precisions, 4 batch
    sizes, 2 categories (480 profile keys) and 12 tenants; deterministic. Metrics come in
    runs of `run` from one worker and one profile key (a worker ships its recent results
    together); run=1 makes every metric of a request differ (the worst case)."""
    out = []
    for j in range(n):
        i = j // run
        kind, device = DEVICES[i % 4]
        worker = f"{kind}-{i % 16}"
        task_id = f"task-{j:08d}"
        m = types_pb2.ResultMetrics(
            task_id=task_id,
            attempt=1,
            assignment_token=sign_assignment(TOKEN, task_id, 1, worker),
            worker_id=worker,
            device_model=device,
            model=types_pb2.ModelRef(name=MODELS[i // 4 % 5], version="1"),
            precision=PRECISIONS[i // 20 % 3],
            batch_size=(1, 8, 32, 128)[i // 60 % 4],
            category=("inference", "create_synthetic_data")[i // 240 % 2],
            tenant=f"tenant-{j % 12}",
            outcome=types_pb2.OUTCOME_SUCCEEDED,
            items_per_second=100.0 + j % 97,
            gpu_utilization=0.8 if kind == "gpu" else 0.0,
            cpu_utilization=0.5,
            memory_bytes=1 << 28,
            gpu_power_watts=300.0 if kind == "gpu" else 0.0,
        )
        m.execution_time.FromNanoseconds(5_000_000 + (j * 7919) % 50_000_000)
        m.queue_wait.FromMilliseconds(j % 100)
        m.finished_at.FromSeconds(1_900_000_000 + j // 100)
        out.append(m)
    return out


def batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# -- the service ----------------------------------------------------------------------------


async def ingest_once(
    url: str, requests: Sequence[profile_store_pb2.IngestMetricsRequest], batch: int, profiler: Any = None
) -> dict[str, float]:
    """One pass on an empty profile store: seconds from the first write to the last ack, the
    event-loop thread's CPU seconds over that span, and the group commits (profiled over
    the same span when a pyinstrument profiler is given)."""
    _truncate(url)
    config = ProfileStoreConfig(
        port=0, database_url=url, internal_token=TOKEN, classifier_address="", ingest_batch_max=batch
    )
    app = ProfileStoreApp(config)
    thresholds = gc.get_threshold()
    settle_gc()  # as the service process does (common.server.service_main)
    await app.start()
    assert app.server is not None and app.servicer is not None
    try:
        async with authed_channel(f"127.0.0.1:{app.server.port}", TOKEN) as channel:
            call = profile_store_pb2_grpc.ProfileStoreServiceStub(channel).IngestMetrics()

            async def writer() -> None:
                for request in requests:
                    await call.write(request)
                await call.done_writing()

            if profiler is not None:
                profiler.start()
            collector = GcTimer()
            started, cpu = time.perf_counter(), time.thread_time()
            writing = asyncio.create_task(writer())
            acked = 0
            with collector:
                async for response in call:
                    bad = [a for a in response.acks if a.status.code != 0]
                    assert not bad, bad[0]
                    acked += len(response.acks)
            elapsed, cpu = time.perf_counter() - started, time.thread_time() - cpu
            if profiler is not None:
                profiler.stop()
            await writing
        commits = app.servicer.commits
    finally:
        await app.stop()
        # The baselines run in this process too: give them CPython's collector back.
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    expected = sum(len(r.metrics) for r in requests)
    assert acked == expected, (acked, expected)
    return {
        "seconds": elapsed,
        "cpu_seconds": cpu,
        "gc_seconds": collector.seconds,
        "transactions": commits.transactions,
    }


class GcTimer:
    """Wall time spent in the garbage collector while entered (gc.callbacks)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started

    def __enter__(self) -> GcTimer:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *_exc: object) -> None:
        gc.callbacks.remove(self._callback)


def _truncate(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE profile_store.metric_samples, profile_store.profiles, profile_store.worker_profiles,"
            " profile_store.resources, profile_store.tenant_usage"
        )


# -- the ceiling: the same rows into a plain table ------------------------------------------


def _plain_table(conn: psycopg.Connection[Any]) -> None:
    conn.execute("DROP TABLE IF EXISTS bench_plain")
    conn.execute("CREATE TABLE bench_plain (LIKE profile_store.metric_samples INCLUDING ALL)")
    conn.commit()


def insert_once(url: str, rows: Sequence[tuple[Any, ...]], batch: int) -> float:
    sql = f"INSERT INTO bench_plain ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"
    with psycopg.connect(url) as conn:
        _plain_table(conn)
        started = time.perf_counter()
        for chunk in batches(rows, batch):
            with conn.cursor() as cur:
                cur.executemany(sql, chunk)
            conn.commit()
        return time.perf_counter() - started


def copy_once(url: str, rows: Sequence[tuple[Any, ...]], batch: int) -> float:
    sql = f"COPY bench_plain ({', '.join(COLUMNS)}) FROM STDIN"
    with psycopg.connect(url) as conn:
        _plain_table(conn)
        started = time.perf_counter()
        for chunk in batches(rows, batch):
            with conn.cursor() as cur, cur.copy(sql) as copy:
                for row in chunk:
                    copy.write_row(row)
            conn.commit()
        return time.perf_counter() - started


# -- where the time goes --------------------------------------------------------------------


def profile_ingest(
    url: str, requests: Sequence[profile_store_pb2.IngestMetricsRequest], batch: int
) -> dict[str, float]:
    """Share of sampled wall time per category (ingest_report.CATEGORIES) in one more pass."""
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0005, async_mode="disabled")
    asyncio.run(ingest_once(url, requests, batch, profiler))
    session = profiler.last_session
    assert session is not None
    return shares(session.root_frame())


# -- the run --------------------------------------------------------------------------------


def measure(n: int, batch: int, repeats: int) -> dict[str, Any]:
    name = f"switchyard_bench_{uuid.uuid4().hex[:10]}"
    base = PG_ADMIN.rpartition("/")[0]
    url = f"{base}/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        db.upgrade(url, SCHEMA, MIGRATIONS)
        metrics = build_metrics(n)
        requests = [profile_store_pb2.IngestMetricsRequest(metrics=list(c)) for c in batches(metrics, batch)]
        rows = [tuple(sample_row(convert.metric_from_proto(m), _now())[c] for c in COLUMNS) for m in metrics]
        runs: dict[str, list[float]] = {"ingest": [], "insert": [], "copy": [], "copy_group": []}
        cpu_us, per_transaction, gc_share = [], [], []
        load = [os.getloadavg()[0]]
        for _ in range(repeats):  # interleaved, so that noise hits all of them alike
            one = asyncio.run(ingest_once(url, requests, batch))
            runs["ingest"].append(n / one["seconds"])
            cpu_us.append(one["cpu_seconds"] / n * 1e6)
            gc_share.append(one["gc_seconds"] / one["seconds"])
            per_transaction.append(n / one["transactions"])
            runs["insert"].append(n / insert_once(url, rows, batch))
            runs["copy"].append(n / copy_once(url, rows, batch))
            runs["copy_group"].append(n / copy_once(url, rows, GROUP_MAX))
        load.append(os.getloadavg()[0])
        where = profile_ingest(url, requests, batch)
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return {
        "metrics": n,
        "batch": batch,
        "group_max": GROUP_MAX,
        "repeats": repeats,
        "rates": runs,
        "loop_cpu_us_per_metric": cpu_us,
        "gc_share_of_wall": gc_share,
        "metrics_per_transaction": per_transaction,
        "load_average": load,
        "profile": where,
    }


def _now() -> Any:
    from common.timeutil import utcnow

    return utcnow()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.split("\n")[0])
    parser.add_argument("--metrics", type=int, default=GOAL)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv if argv is not None else [])
    result = measure(args.metrics, args.batch, args.repeats)
    command = "python -m bench.ingest" + (f" {' '.join(argv)}" if argv else "")
    lines = report(result, command)
    write("ingest", lines, result)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
