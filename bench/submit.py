"""Submit throughput of the front door (DESIGN §9): tasks/s from the first SubmitTasks to
the last durable acknowledgement, on PostgreSQL.

A real SchedulerApp and ClassifierApp run in this process on loopback ports against a
fresh PostgreSQL database (created and dropped here; `synchronous_commit=on`, the
default). A tenant token is seeded; then (a) single-task SubmitTasks calls from a few
concurrent clients and (b) calls carrying 1,000 tasks each are timed. A reply means the
scheduler committed every task of the call. Each case runs `--repeats` times.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import psycopg

from bench.report import header, spread, write
from common.channels import CHANNEL_OPTIONS
from common.config import load_config
from services.classifier.admin import seed_demo_tenants
from services.classifier.app import ClassifierApp
from services.classifier.config import ClassifierConfig
from services.scheduler.app import SchedulerApp
from services.scheduler.config import SchedulerConfig
from switchyard.v1 import classifier_pb2, classifier_pb2_grpc, types_pb2

PG_ADMIN = os.environ.get("SWITCHYARD_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
TOKEN = "bench-submit-internal-token-0123"
GOAL = 3000  # tasks/s of batched submission ("several thousand")


# Measured while writing this benchmark (2026-11-22), to say where the time goes.
FINDINGS = [
    "Where the time goes: the classifier's share is the ClassifyTasks baseline (validation and",
    "classification of the same specs, no enqueue), several times faster than a submit. The rest",
    "is the scheduler's EnqueueTasks: converting and inserting the rows in one group commit per",
    "batch (PostgreSQL fsync at synchronous_commit=on) and indexing them in the group queues.",
    "Single-task calls pay a whole round trip and a share of a commit each; lookups happen only",
    "for idempotency keys and dependencies, and jobs are inserted if absent (no per-call read).",
]


@dataclass(frozen=True)
class Case:
    name: str
    calls: int
    tasks_per_call: int
    clients: int
    # ClassifyTasks instead of SubmitTasks: the classifier's own share, nothing enqueued.
    dry_run: bool = False


def spec(i: int) -> types_pb2.TaskSpec:
    return types_pb2.TaskSpec(
        category="inference" if i % 2 else "preprocess",
        model=types_pb2.ModelRef(name="mlp"),
        batch_size=8,
        labels={"bench": "submit"},
    )


async def _client(
    stub: classifier_pb2_grpc.ClassifierServiceAsyncStub, token: str, case: Case, calls: int
) -> None:
    metadata = (("authorization", f"Bearer {token}"),)
    specs = [spec(i) for i in range(case.tasks_per_call)]
    for _ in range(calls):
        if case.dry_run:
            classified = await stub.ClassifyTasks(
                classifier_pb2.ClassifyTasksRequest(tasks=specs), metadata=metadata, timeout=120
            )
            assert len(classified.classifications) == case.tasks_per_call
            continue
        request = classifier_pb2.SubmitTasksRequest(tasks=specs)
        reply = await stub.SubmitTasks(request, metadata=metadata, timeout=120)
        assert len(reply.tasks) == case.tasks_per_call


async def run_case(stub: Any, token: str, case: Case) -> float:
    """Tasks/s of one run: first submit to last acknowledgement."""
    share = [
        case.calls // case.clients + (1 if i < case.calls % case.clients else 0) for i in range(case.clients)
    ]
    started = time.perf_counter()
    await asyncio.gather(*(_client(stub, token, case, n) for n in share if n))
    return case.calls * case.tasks_per_call / (time.perf_counter() - started)


async def measure(url: str, cases: Sequence[Case], repeats: int) -> dict[str, list[float]]:
    scheduler = SchedulerApp(
        load_config(
            SchedulerConfig,
            overrides={
                "port": 0,
                "database_url": url,
                "internal_token": TOKEN,
                "profile_store_address": "127.0.0.1:9",
                "classifier_address": "127.0.0.1:9",
                "log_level": "WARNING",
            },
        )
    )
    await scheduler.start()
    token = (await asyncio.to_thread(seed_demo_tenants, url))["acme"]
    classifier = ClassifierApp(
        ClassifierConfig(
            port=0,
            database_url=url,
            scheduler_address=f"127.0.0.1:{scheduler.server.port}",
            internal_token=TOKEN,
            log_level="WARNING",
            grace_period_s=0,
        )
    )
    await classifier.start()
    results: dict[str, list[float]] = {c.name: [] for c in cases}
    try:
        async with grpc.aio.insecure_channel(
            f"127.0.0.1:{classifier.server.port}", options=CHANNEL_OPTIONS
        ) as channel:
            stub = classifier_pb2_grpc.ClassifierServiceStub(channel)
            await run_case(stub, token, Case("warm-up", 20, 10, 2))
            for _ in range(repeats):
                for case in cases:
                    rate = await run_case(stub, token, case)
                    results[case.name].append(rate)
                    print(f"submit: {case.name}: {rate:,.0f} tasks/s", flush=True)
    finally:
        await classifier.stop()
        await scheduler.stop()
    return results


def with_database(cases: Sequence[Case], repeats: int) -> dict[str, list[float]]:
    name = f"switchyard_bench_submit_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        return asyncio.run(measure(f"{PG_ADMIN.rpartition('/')[0]}/{name}", cases, repeats))
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def report(cases: Sequence[Case], results: dict[str, list[float]], command: str) -> list[str]:
    notes = [
        "A real scheduler and classifier in one process on loopback gRPC, PostgreSQL at its",
        "default durability (`synchronous_commit=on`); tasks/s from the first SubmitTasks to the",
        "last reply (each reply means the scheduler committed the call's tasks; DESIGN §9).",
        f"Median of {len(next(iter(results.values())))} runs with min-max.",
    ]
    lines = [*header("Submit throughput of the front door", command, notes)]
    lines += ["| case | calls | tasks per call | clients | tasks/s |", "|---|---:|---:|---:|---:|"]
    cases = sorted(cases, key=lambda c: c.dry_run)
    for c in cases:
        lines.append(
            f"| {c.name} | {c.calls:,} | {c.tasks_per_call:,} | {c.clients} | {spread(results[c.name])} |"
        )
    batched = statistics.median(results[[c for c in cases if not c.dry_run][-1].name])
    verdict = "meets" if batched >= GOAL else "misses"
    lines += [
        "",
        f"Batched submission {verdict} the goal of {GOAL:,} tasks/s: median {batched:,.0f} tasks/s.",
        "",
        *FINDINGS,
    ]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.submit", description=__doc__.split("\n")[0])
    parser.add_argument("--single-calls", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--batch-calls", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv if argv is not None else [])
    logging.disable(logging.WARNING)
    cases = [
        Case("single-task calls", args.single_calls, 1, args.clients),
        Case(f"{args.batch_size:,}-task calls", args.batch_calls, args.batch_size, 2),
        Case(
            f"baseline: ClassifyTasks, {args.batch_size:,} specs", args.batch_calls, args.batch_size, 2, True
        ),
    ]
    results = with_database(cases, args.repeats)
    command = "make bench  (python -m bench.submit" + (f" {' '.join(argv)}" if argv else "") + ")"
    lines = report(cases, results, command)
    data = {"cases": [c.__dict__ for c in cases], "tasks_per_s": results, "goal": GOAL}
    write("submit", lines, data)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
