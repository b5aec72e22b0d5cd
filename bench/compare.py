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
  per-category latency, placement), and a no-op run profiled with py-spy.

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
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import mesh as mesh_bench
from bench import report
from bench.baselines import switchyard_bench
from switchyard.mesh import Mesh

THROUGHPUT_TASKS = 20_000
SEQUENTIAL_TASKS = 2_000
REPEATS = 3
MIXED_ROUNDS = 8  # per tenant; 5 torch tasks per round
PROFILE_TASKS = 10_000
SYSTEMS = ("switchyard", "ray", "celery")
COMMAND = "make bench BENCH=compare   (python -m bench.compare)"
RAY_TIMEOUT_S = 900
# Raw py-spy stacks (about 2 MB): local output, ignored by git like the rest of .switchyard/.
PROFILE_DIR = Path(".switchyard/bench/compare_profile")
GOALS = {"ray": 3.0, "celery": 10.0}  # Switchyard throughput at least this many times the baseline


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


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
        data["mixed"] = asyncio.run(switchyard_bench.mixed_run(mixed_rounds, shared))
    if profile_tasks:
        print("profiled no-op run (Switchyard)", flush=True)
        out_dir = PROFILE_DIR
        data["profile"] = asyncio.run(switchyard_bench.profiled_throughput(profile_tasks, out_dir))
    data["elapsed_s"] = time.time() - started
    return data


# --- the report ---


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ratios(systems: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Switchyard / baseline, of the medians: throughput (higher is better) and latency."""
    sy = systems.get("switchyard", {})
    out: dict[str, dict[str, float]] = {}
    for name, figures in systems.items():
        if name == "switchyard" or not figures.get("tasks_per_s") or not sy.get("tasks_per_s"):
            continue
        out[name] = {
            key: _median(sy[key]) / _median(figures[key]) for key in ("tasks_per_s", "p50_ms", "p99_ms")
        }
    return out


def _figure_lines(data: dict[str, Any]) -> list[str]:
    lines = [
        "| system | throughput, tasks/s | sequential p50, ms | sequential p99, ms |",
        "|---|---:|---:|---:|",
    ]
    for name, figures in data["systems"].items():
        if not figures["tasks_per_s"]:
            lines.append(f"| {name} | no result (below) | | |")
            continue
        rounds = len(figures["tasks_per_s"])
        partial = f" ({rounds} of {data['settings']['repeats']} rounds)" if figures.get("errors") else ""
        lines.append(
            f"| {name}{partial} | {report.spread(figures['tasks_per_s'])} "
            f"| {report.spread(figures['p50_ms'], ',.2f')}"
            f" | {report.spread(figures['p99_ms'], ',.2f')} |"
        )
    lines += [
        "",
        "| Switchyard / baseline | throughput | p50 latency | p99 latency | goal |",
        "|---|---:|---:|---:|---|",
    ]
    for name, ratio in ratios(data["systems"]).items():
        goal = GOALS.get(name, 0.0)
        met = ratio["tasks_per_s"] >= goal and (name != "ray" or ratio["p50_ms"] <= 1.0)
        want = f"throughput ≥ {goal:g}x" + (", p50 ≤ 1x" if name == "ray" else "")
        lines.append(
            f"| / {name} | {ratio['tasks_per_s']:.2f}x | {ratio['p50_ms']:.2f}x | {ratio['p99_ms']:.2f}x "
            f"| {want}: **{'met' if met else 'missed'}** |"
        )
    errors = [f"- {name}, {e}" for name, f in data["systems"].items() for e in f.get("errors", [])]
    return lines + (["", *errors] if errors else [])


def _mixed_lines(mixed: dict[str, Any]) -> list[str]:
    lines = [
        "## Mixed torch workload, Switchyard alone",
        "",
        f"{mixed['tasks']} tasks from {', '.join(switchyard_bench.TENANTS)} at once (each: inference mlp and",
        "resnet_small, create_synthetic_data, preprocess, training_step, in rounds), "
        f"{mixed['wall_s']:.1f} s wall, {len(mixed['failed'])} not succeeded.",
        "",
        "| tenant | device time, s | share |",
        "|---|---:|---:|",
    ]
    for tenant, share in mixed["device_share"].items():
        lines.append(f"| {tenant} | {mixed['device_s'][tenant]:.2f} | {share:.1%} |")
    lines += [
        "",
        "| category | tasks | latency p50, s | latency p95, s | ran on |",
        "|---|---:|---:|---:|---|",
    ]
    for category, values in mixed["latency_s"].items():
        where = ", ".join(f"{w} {n}" for w, n in mixed["placed"][category].items())
        lines.append(
            f"| {category} | {len(values)} | {percentile(values, 0.5):.2f} | {percentile(values, 0.95):.2f} "
            f"| {where} |"
        )
    note = "Latency: the task's submitted_at → finished_at; device time: started_at → finished_at."
    return [*lines, "", note]


def _cpu_lines(profile: dict[str, Any], tasks: int) -> list[str]:
    wall = profile["wall_s"]
    lines = [
        f"CPU time of each process during an unsampled run of {tasks:,} no-op tasks "
        f"({profile['tasks_per_s']:,.0f} tasks/s, {wall:.1f} s wall, so {wall * (os.cpu_count() or 1):.0f} "
        "CPU-s on this machine; `other` is everything else running here):",
        "",
        "| process | CPU s | CPU ms per task | share of the machine |",
        "|---|---:|---:|---:|",
    ]
    for name, seconds in profile["cpu_s"].items():
        share = seconds / (wall * (os.cpu_count() or 1))
        lines.append(f"| {name} | {seconds:.1f} | {seconds * 1000 / tasks:.2f} | {share:.0%} |")
    return [*lines, ""]


def _stage_lines(stages: dict[str, list[float]]) -> list[str]:
    count = len(next(iter(stages.values()), []))
    lines = [
        f"One no-op task at a time ({count} of them), split by the task's own timestamps:",
        "",
        "| stage | p50, ms | p99, ms |",
        "|---|---:|---:|",
    ]
    for stage, values in stages.items():
        lines.append(f"| {stage} | {percentile(values, 0.5):.2f} | {percentile(values, 0.99):.2f} |")
    return [*lines, ""]


def _profile_lines(profile: dict[str, Any], tasks: int) -> list[str]:
    lines = ["## Where the time goes (Switchyard)", ""]
    if "measured" in profile:
        lines += [f"Measured again on {profile['measured']} (`python -m bench.compare --only-profile`).", ""]
    if "stages_ms" in profile:
        lines += _stage_lines(profile["stages_ms"])
    if "cpu_s" in profile:
        lines += _cpu_lines(profile, tasks)
    if "error" in profile:
        return [*lines, f"Not profiled: {profile['error']}"]
    services = sorted(profile["services"].items(), key=lambda kv: -kv[1]["samples"])
    lines += [
        f"Then the same run with py-spy on every service and on this client "
        f"({profile['sampled_tasks_per_s']:,.0f} tasks/s while sampled at {switchyard_bench.PROFILE_RATE_HZ} "
        "Hz, on-CPU samples only). Raw stacks (collapsed): `.switchyard/bench/compare_profile/`.",
        "",
        "| process | CPU s (samples / rate) | top self time | top project function (deepest frame of ours) |",
        "|---|---:|---|---|",
    ]
    for name, summary in services:
        own = summary["self"][0] if summary["self"] else ("-", 0)
        incl = summary["deepest"][:1] or [("-", 0)]
        total = max(summary["samples"], 1)
        lines.append(
            f"| {name} | {summary['cpu_s']:.1f} | `{own[0]}` {own[1] / total:.0%} "
            f"| `{incl[0][0]}` {incl[0][1] / total:.0%} |"
        )
    for name, summary in services[:3]:
        total = max(summary["samples"], 1)
        lines += ["", f"**{name}**: the deepest function of ours in each sample (with what it calls):", ""]
        lines += [f"- {n / total:.0%} `{f}`" for f, n in summary["deepest"]]
        lines += ["", "inclusive (every function of ours on the stack):", ""]
        lines += [f"- {n / total:.0%} `{f}`" for f, n in summary["inclusive"]]
    return lines


def _plots(data: dict[str, Any]) -> list[str]:
    plt = report.pyplot()
    measured = {n: f for n, f in data["systems"].items() if f["tasks_per_s"]}
    if plt is None or not measured:
        return []
    names = list(measured)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, title in ((axes[0], "tasks_per_s", "no-op throughput, tasks/s"), (axes[1], "p50_ms", "")):
        if key == "p50_ms":
            title = "sequential latency, ms (p50 bars, p99 dots)"
            p99 = [_median(measured[n]["p99_ms"]) for n in names]
            ax.plot(names, p99, "o", color="black")
        values = [measured[n][key] for n in names]
        medians = [_median(v) for v in values]
        low = [m - min(v) for m, v in zip(medians, values, strict=True)]
        high = [max(v) - m for m, v in zip(medians, values, strict=True)]
        ax.bar(
            names, medians, yerr=[low, high], capsize=4, color=["#2b6cb0", "#dd6b20", "#38a169"][: len(names)]
        )
        ax.set_title(title)
    fig.tight_layout()
    files = ["compare.png"]
    fig.savefig(report.REPORTS / files[0], dpi=100)
    plt.close(fig)
    if "mixed" in data and data["mixed"]["device_share"]:
        mixed = data["mixed"]
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        axes[0].bar(list(mixed["device_share"]), [v * 100 for v in mixed["device_share"].values()])
        axes[0].set_title("share of device time, %")
        categories = list(mixed["latency_s"])
        axes[1].barh(categories, [percentile(mixed["latency_s"][c], 0.5) for c in categories])
        axes[1].set_title("latency p50 by category, s")
        fig.tight_layout()
        files.append("compare_mixed.png")
        fig.savefig(report.REPORTS / files[1], dpi=100)
        plt.close(fig)
    return [f"![{f}]({f})" for f in files]


def write_report(data: dict[str, Any], command: str) -> Path:
    s = data["settings"]
    notes = [
        *([f"Run started {data['started']}."] if "started" in data else []),
        f"Machine: {data['machine']}.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in data["versions"].items()) + ".",
        "",
        f"{s['throughput_tasks']:,} no-op tasks per system, first submit to the last result seen by the "
        f"client (Switchyard: batches of {s['batch']} through the SDK, the mesh as `switchyard up` starts "
        "it with 2 CPU workers, every task durable in PostgreSQL with synchronous_commit=on, the profile "
        "store ingesting metrics; Ray: `ray.init(num_cpus=2)`, no-op remote functions; Celery: a "
        "2-process prefork worker, our own Redis as broker and backend, one `group`). Then "
        f"{s['sequential_tasks']:,} sequential single tasks (submit → result). The systems alternate, "
        f"{s['repeats']} rounds, each started fresh: median (min-max); ratios are of medians.",
    ]
    REPORTS = report.REPORTS
    REPORTS.mkdir(parents=True, exist_ok=True)
    lines = report.header("Switchyard beside Ray and Celery", command, notes)
    lines += [*_figure_lines(data), "", *_plots(data)]
    if "mixed" in data:
        lines += ["", *_mixed_lines(data["mixed"])]
    if "profile" in data:
        lines += ["", *_profile_lines(data["profile"], data["settings"]["profile_tasks"])]
    lines += ["", f"Whole run: {data['elapsed_s'] / 60:.1f} min. Reading of the profile: docs/benchmarks.md."]
    return report.write("compare", lines, data)


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
        data["profile"] = asyncio.run(switchyard_bench.profiled_throughput(tasks, out_dir))
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
