"""Simulator report: the three trace replays under Switchyard, FIFO and least-loaded, each
repeated over seeds (medians with min-max), the goals they test, a fair-share ablation on the
GenAI replay, and the scale runs (wall time and memory). Writes bench/reports/simulate.md.

Usage: python -m bench.simulate [--quick] [--seeds N] [--scale-workers N --scale-tasks M]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace

from bench.report import REPORTS, header, pyplot, write
from services.scheduler.simulator import scenarios
from services.scheduler.simulator.loop import RunConfig, simulate
from services.scheduler.simulator.metrics import Figures, figures
from services.scheduler.simulator.model import Scenario
from services.scheduler.simulator.policies import POLICIES
from services.scheduler.simulator.report import Ablation, goals, repeated_table, tenant_table
from services.scheduler.simulator.run import Repeated, repeat

COMMAND = "make bench BENCH=simulate   (python -m bench.simulate)"
# Lognormal sigma of execution-time noise: what the seeds vary in a trace replay (with the
# Azure mix's batch background and least-loaded's tie ranks).
JITTER = 0.1
JAIN_WINDOW_S = 3600.0


def scale_run(workers: int, tasks: int) -> dict[str, float]:
    """One Switchyard run of the synthetic fleet in this process (called in a child)."""
    s = scenarios.synthetic_fleet(workers, tasks)
    started = time.perf_counter()
    records = simulate(s, POLICIES["switchyard"](0), RunConfig(reprioritize_s=60.0))
    wall = time.perf_counter() - started
    return {
        "workers": len(s.cluster.workers),
        "tasks": len(records),
        "wall_s": wall,
        "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def scale_in_child(workers: int, tasks: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.simulate", "--child-scale", str(workers), str(tasks)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def plots(results: dict[str, Repeated]) -> list[str]:
    plt = pyplot()
    if plt is None:
        return ["(matplotlib not installed: `pip install -e .[bench]` for the plots)"]
    lines = []
    for name, r in results.items():
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
        names = r.policies
        panels = [
            ("JCT mean / p95 (s)", (lambda f: f.jct_mean, lambda f: f.jct_p95)),
            ("queueing mean / p95 (s)", (lambda f: f.wait_mean, lambda f: f.wait_p95)),
        ]
        for ax, (title, values) in zip(axes, panels, strict=False):
            for k, (label, value) in enumerate(zip(("mean", "p95"), values, strict=True)):
                mids, lows, highs = zip(*(r.spread(p, value) for p in names), strict=True)
                err = [
                    [m - lo for m, lo in zip(mids, lows, strict=True)],
                    [h - m for m, h in zip(mids, highs, strict=True)],
                ]
                ax.bar([i + 0.4 * k for i in range(len(names))], mids, 0.4, yerr=err, capsize=3, label=label)
            ax.set_xticks([i + 0.2 for i in range(len(names))], names)
            ax.set_title(f"{title}, median and min-max")
            ax.legend()
        devices = sorted(r.runs[0].figures[0].utilisation)
        for k, p in enumerate(names):
            axes[2].bar(
                [i + 0.27 * k for i in range(len(devices))],
                [r.median(p, _utilisation(d)) for d in devices],
                0.27,
                label=p,
            )
        axes[2].set_xticks([i + 0.27 for i in range(len(devices))], devices, rotation=45, fontsize=7)
        axes[2].set_title("utilisation per device model (median)")
        axes[2].legend(fontsize=7)
        fig.tight_layout()
        path = REPORTS / f"simulate_{name}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        lines.append(f"![{name}]({path.name})")
    return lines


def _utilisation(device: str) -> Callable[[Figures], float]:
    return lambda f: f.utilisation[device]


def _same(scenario: Scenario) -> Callable[[int], Scenario]:
    """A trace replay is the same workload whatever the seed (the run's seed adds the noise)."""
    return lambda _seed: scenario


def _slot_interval(r: Repeated) -> float:
    """Mean virtual seconds between two completions of the Switchyard runs (medians)."""
    return r.median("switchyard", lambda f: f.makespan / f.completed if f.completed else float("nan"))


def fair_share_ablation(genai: Scenario, final: RunConfig, runs: Repeated) -> list[Ablation]:
    """Seed 0 of the GenAI replay with the fair-share changes added one at a time, from the
    settings the report had before them to the ones it uses now (the last row, from `runs`)."""
    steps = [
        (
            "before: completed work only, half-life 3,600 s, classic factor, reprioritise every 60 s",
            replace(
                final, in_flight=False, half_life_s=3600.0, fair_share_dampening=1.0, reprioritize_s=60.0
            ),
        ),
        (
            "+ in-flight charge of running tasks",
            replace(final, half_life_s=3600.0, fair_share_dampening=1.0, reprioritize_s=60.0),
        ),
        (
            f"+ half-life {final.half_life_s:,.0f} s",
            replace(final, fair_share_dampening=1.0, reprioritize_s=60.0),
        ),
        (f"+ dampening {final.fair_share_dampening:g}", replace(final, reprioritize_s=60.0)),
        ("+ reprioritise every 5 s (the service's default)", replace(final, reprioritize_s=5.0)),
    ]
    out = []
    for label, config in steps:
        started = time.perf_counter()
        records = simulate(genai, POLICIES["switchyard"](0), replace(config, seed=0))
        f = figures("switchyard", records, genai, jain_window_s=JAIN_WINDOW_S)
        out.append(Ablation(label, f.jain_mean, f.jct_mean, time.perf_counter() - started))
    last = runs.of("switchyard")[0]
    label = f"every {final.reprioritize_s:g} s instead: the settings above (their seed 0)"
    out.append(Ablation(label, last.jain_mean, last.jct_mean, last.wall_s))
    fifo = runs.of("fifo")[0]
    out.append(Ablation("fifo, for contrast", fifo.jain_mean, fifo.jct_mean, fifo.wall_s))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true", help="small slices, one seed, for a smoke run")
    p.add_argument("--seeds", type=int, default=3, help="repeats of each replay (seeds 0..N-1)")
    p.add_argument("--scale-workers", type=int, default=100_000)
    p.add_argument("--scale-tasks", type=int, default=1_000_000)
    p.add_argument("--no-ablation", action="store_true", help="skip the GenAI fair-share ablation")
    p.add_argument("--child-scale", nargs=2, type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv if argv is not None else [])
    if args.child_scale:
        print(json.dumps(scale_run(*args.child_scale)))
        return 0
    limit = 3000 if args.quick else None
    seeds = list(range(1 if args.quick else args.seeds))
    traces = scenarios.DEFAULT_TRACES
    base = RunConfig(jitter=JITTER)
    results: dict[str, Repeated] = {}
    results["azure-llm"] = repeat(
        lambda seed: scenarios.azure_llm_mix(traces, limit=limit, seed=seed), seeds, base
    )
    for name, load in (("alibaba-gpu", 0.5), ("alibaba-gpu-load2", 2.0)):
        replay = scenarios.alibaba_gpu_replay(traces, load=load, limit=limit)
        results[name] = repeat(_same(replay), seeds, base)
    genai = scenarios.genai_replay(traces, limit=limit)
    genai_config = replace(scenarios.RUN_CONFIGS["genai"], jitter=JITTER)
    results["genai"] = repeat(_same(genai), seeds, genai_config, jain_window_s=JAIN_WINDOW_S)
    ablation = [] if args.no_ablation else fair_share_ablation(genai, genai_config, results["genai"])
    scale = [scale_in_child(1_523, 8_152) for _ in seeds]
    if not args.quick:
        scale.append(scale_in_child(args.scale_workers, args.scale_tasks))
    data = {k: [[asdict(f) for f in c.figures] for c in r.runs] for k, r in results.items()}
    write("simulate", report(results, scale, ablation), {"seeds": seeds, "runs": data, "scale": scale})
    return 0


def ablation_lines(genai: Repeated, ablation: list[Ablation]) -> list[str]:
    if not ablation:
        return []
    lines: list[str] = []
    lines += ["## GenAI fair share: what each change does (seed 0)", ""]
    lines += ["| settings | Jain | JCT mean (s) | wall (s) |", "|---|---|---|---|"]
    lines += [f"| {a.label} | {a.jain:.3f} | {a.jct_mean:,.0f} | {a.wall_s:.0f} |" for a in ablation]
    lines += [
        "",
        "Each row adds one change to the row above it (the last two differ only in how often "
        "priorities are recomputed). Between two recomputations the queue's order is fixed, so every "
        "slot freed in between goes to the tenant then on top, and tenants take turns in bursts; the "
        "in-flight charge of a task just started is still 0, so only a later recomputation sees it. "
        "How often is often enough depends on how fast slots free (here one every "
        f"{_slot_interval(genai):.1f} s on average), not on the trace's compression.",
        "",
    ]
    return lines


def report(
    results: dict[str, Repeated], scale: list[dict[str, float]], ablation: list[Ablation]
) -> list[str]:
    seeds = results["genai"].seeds
    lines = header(
        "Simulator: trace replays under Switchyard, FIFO and least-loaded",
        COMMAND,
        [
            "",
            "One discrete-event loop (services/scheduler/simulator) drives the unchanged pure core "
            "(`plan_cycle`, `core.priority`) on a ManualClock. FIFO = one FIFO per group placed by the "
            "same `plan_cycle`; least-loaded = FIFO order, lowest busy fraction (heterogeneity-blind).",
            "JCT = finish - arrival; queueing = start - ready; a task whose deadline passes before it "
            "starts expires (an SLO miss). Jain's index: each window of 1 h, the device time (slot-seconds "
            "held, as the scheduler charges it) of every tenant backlogged (a task queued) throughout the "
            "window, divided by its entitlement (share); averaged over windows with two or more such "
            "tenants.",
            f"Every figure is the median over {len(seeds)} seeds with its min-max: a seed sets the "
            f"execution-time noise (lognormal, sigma {JITTER:g}), the Azure mix's batch background and "
            "least-loaded's tie ranks.",
        ],
    )
    lines += goals(results)
    for name, r in results.items():
        s = r.scenario
        lines += [f"## {name}", "", f"SLO: {s.slo}. Assumptions:", ""]
        lines += [f"* {a}" for a in s.assumptions]
        if name == "genai":
            lines += [f"* {a}" for a in scenarios.genai_fair_share_notes()]
        lines += ["", "Device speed table (relative, reference = 1.0):", ""]
        lines += ["| device | category | speed |", "|---|---|---|"]
        lines += [f"| {d} | {c_} | {v:g} |" for d, c_, v in s.speeds.rows()]
        lines += ["", *repeated_table(r), ""]
        if name == "genai":
            lines += [*tenant_table(r), ""]
    lines += ablation_lines(results["genai"], ablation)
    lines += ["## Plots", "", *plots(results), ""]
    lines += ["## Scale", "", "| workers | tasks | wall (s) | max RSS (MiB) |", "|---|---|---|---|"]
    lines += [
        f"| {r['workers']:,} | {r['tasks']:,} | {r['wall_s']:.1f} | {r['maxrss_mib']:,.0f} |" for r in scale
    ]
    lines += [
        "",
        "The small rows are the synthetic fleet at the Alibaba GPU trace's size, once per seed; the "
        "100,000-worker run is run once (it takes minutes). The Alibaba replay's own wall time per policy "
        "is in its table. Scale runs: Switchyard policy only, reprioritise every 60 virtual s, each in a "
        "fresh process (`ru_maxrss`).",
    ]
    return lines


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
