"""Switchyard beside Ray and Celery on this machine, in one run (DESIGN §9).

- Throughput: THROUGHPUT_TASKS no-op tasks, first submit to the last result the client
  sees. Switchyard: the whole mesh as `switchyard up` starts it, every task durable in
  PostgreSQL (synchronous_commit=on), submitted in batches through the SDK, metrics
  ingested. Ray: `ray.init(num_cpus=2)`, no-op remote functions. Celery: a 2-process
  prefork worker on our own Redis (broker and result backend).
- Latency: SEQUENTIAL_TASKS single tasks one at a time, submit → result; p50 and p99.
- The systems alternate, REPEATS rounds, each started fresh and stopped after its turn;
  every figure is the median with its min-max, and the ratios are of the medians.
- Then, Switchyard alone: a mixed torch workload from three tenants (device-time share,
  per-category latency, placement), and a no-op run profiled in-process with cProfile.

Usage: python -m bench.compare [--quick]   (--quick: small counts, for a trial run)
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import mesh as mesh_bench
from bench import report
from bench.baselines import switchyard_bench, switchyard_profile
from bench.compare_report import percentile, write_report
from switchyard.mesh import Mesh

THROUGHPUT_TASKS = 20_000
SEQUENTIAL_TASKS = 2_000
REPEATS = 3
MIXED_ROUNDS = 8  # per tenant; 5 torch tasks per round
PROFILE_TASKS = 10_000
SYSTEMS = ("switchyard", "ray", "celery")
COMMAND = "make bench BENCH=compare   (python -m bench.compare)"
RAY_TIMEOUT_S = 900
# The profiles (pstats files): local output, ignored by git like the rest of .switchyard/.
PROFILE_DIR = Path(".switchyard/bench/compare_profile")


def _ray(throughput_tasks: int, sequential_tasks: int) -> tuple[float, list[float]]:
    """In a child process of its own (see `bench.baselines.ray_bench`)."""
    argv = [sys.executable, "-m", "bench.baselines.ray_bench", str(throughput_tasks), str(sequential_tasks)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=RAY_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ray exited {done.returncode}: {done.stderr.strip()[-500:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return float(result["tasks_per_s"]), [float(x) for x in result["latencies_s"]]


def _celery(throughput_tasks: int, sequential_tasks: int) -> tuple[float, list[float]]:
    from bench.baselines import celery_bench

    with celery_bench.session() as noop:
        return celery_bench.throughput(noop, throughput_tasks), celery_bench.latencies(noop, sequential_tasks)


def _switchyard(
    throughput_tasks: int, sequential_tasks: int, shared: Mesh | None = None
) -> tuple[float, list[float]]:
    return asyncio.run(switchyard_bench.noop_figures(throughput_tasks, sequential_tasks, shared))


RUNNERS: dict[str, Callable[[int, int], tuple[float, list[float]]]] = {
    "switchyard": _switchyard,
    "ray": _ray,
    "celery": _celery,
}


def versions(systems: Sequence[str]) -> dict[str, str]:
    import grpc
    import psycopg

    out = {"python": platform.python_version(), "grpcio": grpc.__version__}
    with psycopg.connect(mesh_bench.PG_ADMIN) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        out["postgresql"] = str(row[0]) if row else "?"
    for system in systems:
        try:
            if system == "ray":
                from bench.baselines import ray_bench

                out["ray"] = ray_bench.version()
            elif system == "celery":
                from bench.baselines import celery_bench

                out |= celery_bench.versions()
        except ImportError as exc:
            out[system] = f"not installed ({exc})"
    return out


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kb = 0
    return f"{cpu}, {os.cpu_count()} CPUs, {mem_kb / 2**20:.0f} GiB, {platform.system()} {platform.release()}"


def measure(
    systems: Sequence[str],
    throughput_tasks: int,
    sequential_tasks: int,
    repeats: int,
    shared: Mesh | None = None,
) -> dict[str, dict[str, Any]]:
    """The systems in turn, `repeats` rounds, each started fresh (Switchyard: unless a
    `shared` mesh is given). A failed turn is recorded in the system's `errors` and the
    next round tries again, unless the system is not installed at all."""
    runners = dict(RUNNERS)
    if shared is not None:
        runners["switchyard"] = functools.partial(_switchyard, shared=shared)
    out: dict[str, dict[str, Any]] = {s: {"tasks_per_s": [], "p50_ms": [], "p99_ms": []} for s in systems}
    for round_ in range(repeats):
        for system in systems:
            figures = out[system]
            if figures.get("missing"):
                continue
            try:
                rate, lat = runners[system](throughput_tasks, sequential_tasks)
            except Exception as exc:
                error = f"round {round_ + 1}: {type(exc).__name__}: {exc}"
                figures.setdefault("errors", []).append(error)
                figures["missing"] = isinstance(exc, ImportError)
                print(f"{system}: FAILED {error}", flush=True)
                continue
            figures["tasks_per_s"].append(rate)
            figures["p50_ms"].append(percentile(lat, 0.50) * 1000)
            figures["p99_ms"].append(percentile(lat, 0.99) * 1000)
            print(
                f"round {round_ + 1} {system}: {rate:,.0f} tasks/s, "
                f"p50 {figures['p50_ms'][-1]:.2f} ms, p99 {figures['p99_ms'][-1]:.2f} ms",
                flush=True,
            )
    return out


def run(
    *,
    systems: Sequence[str] = SYSTEMS,
    throughput_tasks: int = THROUGHPUT_TASKS,
    sequential_tasks: int = SEQUENTIAL_TASKS,
    repeats: int = REPEATS,
    mixed_rounds: int = MIXED_ROUNDS,
    profile_tasks: int = PROFILE_TASKS,
    shared: Mesh | None = None,
) -> dict[str, Any]:
    """Everything the report shows, as one JSON-able dict. `shared`: run every Switchyard
    part on this already started mesh instead of a fresh one each (the smoke test)."""
    started = time.time()
    data: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
        "settings": {
            "throughput_tasks": throughput_tasks,
            "sequential_tasks": sequential_tasks,
            "repeats": repeats,
            "mixed_rounds": mixed_rounds,
            "profile_tasks": profile_tasks,
            "batch": mesh_bench.BATCH,
        },
        "versions": versions(systems),
        "machine": machine(),
        "systems": measure(systems, throughput_tasks, sequential_tasks, repeats, shared),
    }
    if mixed_rounds:
        print("mixed run (Switchyard)", flush=True)
        warmup = min(switchyard_bench.WARMUP_ROUNDS, mixed_rounds)
        data["mixed"] = asyncio.run(switchyard_bench.mixed_run(mixed_rounds, shared, warmup))
    if profile_tasks:
        print("profiled no-op run (Switchyard)", flush=True)
        out_dir = PROFILE_DIR
        data["profile"] = asyncio.run(switchyard_profile.profiled_throughput(profile_tasks, out_dir))
    data["elapsed_s"] = time.time() - started
    return data


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2,000 / 200 tasks, one round")
    parser.add_argument(
        "--only-profile",
        action="store_true",
        help="measure only the profile again; every other figure is kept from bench/reports/compare.json",
    )
    args = parser.parse_args(list(argv) if argv is not None else [])
    # SIGTERM unwinds like Ctrl-C, so every `finally` stops what it started (Redis, workers, mesh).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if args.only_profile:
        data = json.loads((report.REPORTS / "compare.json").read_text())
        started = time.time()
        tasks = data["settings"]["profile_tasks"]
        out_dir = PROFILE_DIR
        data["profile"] = asyncio.run(switchyard_profile.profiled_throughput(tasks, out_dir))
        data["profile"]["measured"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started))
    elif args.quick:
        data = run(
            throughput_tasks=2_000, sequential_tasks=200, repeats=1, mixed_rounds=2, profile_tasks=2_000
        )
    else:
        data = run()
    path = write_report(data, COMMAND + ("   --quick" if args.quick else ""))
    print(f"report: {path}")
    failed = bool(data["systems"].get("switchyard", {}).get("errors"))
    return 1 if failed or data.get("mixed", {}).get("failed") else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
