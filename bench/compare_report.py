"""The report of `bench.compare`: the figure tables, the mixed run, where the time goes,
the plots; `bench/reports/compare.md` and `.json` (and PNGs) from the dict `compare.run` made.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import report
from bench.baselines import switchyard_bench

GOALS = {"ray": 3.0, "celery": 10.0}  # Switchyard throughput at least this many times the baseline


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


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
        f"{mixed['wall_s']:.1f} s wall, {len(mixed['failed'])} not succeeded; measured after an unmeasured "
        f"warm-up of the same workload, {mixed.get('warmup_rounds', 0)} rounds per tenant "
        f"({mixed.get('warmup_s', 0.0):.1f} s), so that cold model loads are not charged to a tenant.",
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
    return lines + _profiler_lines(profile)


def _profiler_lines(profile: dict[str, Any]) -> list[str]:
    services = sorted(profile["services"].items(), key=lambda kv: -kv[1]["cpu_s"])
    slower = 1 - profile["sampled_tasks_per_s"] / profile["tasks_per_s"]
    lines = [
        "Then the same run again, profiled in-process with cProfile in every service, in each worker's "
        "slot processes (`<worker>.slot`, added together) and in this client: "
        f"{profile['sampled_tasks_per_s']:,.0f} tasks/s profiled against {profile['tasks_per_s']:,.0f} "
        f"unprofiled ({slower:.0%} slower). cProfile traces every call, so code that makes many small "
        "calls looks dearer than it is: read the shares, not the seconds. Clock: each process's main "
        "thread CPU time (waiting in epoll or on a pipe costs nothing; other threads, such as gRPC's "
        "own, are not seen); a C function's time counts as its Python caller's own. pstats files: "
        "`.switchyard/bench/compare_profile/` (`python -m pstats FILE`).",
        "",
        "| process | main-thread CPU s (profiled) | under our code | top self time | top function of ours "
        "(own time + library below it) |",
        "|---|---:|---:|---|---|",
    ]
    for name, summary in services:
        own = summary["self"][0] if summary["self"] else ("-", 0)
        deepest = summary["deepest"][:1] or [("-", 0)]
        total = summary["cpu_s"] or 1.0
        lines.append(
            f"| {name} | {summary['cpu_s']:.2f} | {summary['ours_s'] / total:.0%} | `{own[0]}` "
            f"{own[1] / total:.0%} | `{deepest[0][0]}` {deepest[0][1] / total:.0%} |"
        )
    for name, summary in services[:3]:
        total = summary["cpu_s"] or 1.0
        lines += ["", f"**{name}**: each function of ours with the library code below it:", ""]
        lines += [f"- {s / total:.0%} `{f}`" for f, s in summary["deepest"]]
        lines += ["", "inclusive (cumulative time of each function of ours):", ""]
        lines += [f"- {s / total:.0%} `{f}`" for f, s in summary["inclusive"]]
    if profile.get("not_profiled") or profile.get("unannounced"):
        missed = [*profile.get("unannounced", []), *profile.get("not_profiled", [])]
        lines += ["", f"Not profiled (no start-up file, or no profile written in time): {', '.join(missed)}."]
    lines += [
        "",
        "Below a function of ours: time in library code is credited to the nearest function of ours "
        "above it; where a library function has several callers, in proportion to their cumulative "
        "time through it (as gprof does). Event-loop time with no function of ours above it is left "
        "out, so the column `under our code` is below 100%. A coroutine's cumulative time counts only "
        "its steps (not the time it awaits); around SQLAlchemy's asyncio calls, which switch "
        "greenlets, cProfile's call tree is approximate.",
    ]
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
