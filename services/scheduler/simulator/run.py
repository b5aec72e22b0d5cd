"""Run scenarios under every policy and collect figures (used by the CLI and the bench)."""

from __future__ import annotations

import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass

from services.scheduler.simulator.loop import RunConfig, simulate
from services.scheduler.simulator.metrics import Bound, Figures, figures, offline_bound
from services.scheduler.simulator.model import Scenario
from services.scheduler.simulator.policies import POLICIES


@dataclass
class Comparison:
    scenario: Scenario
    figures: list[Figures]
    bound: Bound


def compare(
    scenario: Scenario,
    policies: Sequence[str] = tuple(POLICIES),
    config: RunConfig | None = None,
    jain_window_s: float | None = None,
) -> Comparison:
    out = []
    for name in policies:
        started = time.perf_counter()
        records = simulate(scenario, POLICIES[name](config.seed if config else 0), config)
        wall = time.perf_counter() - started
        f = figures(name, records, scenario, jain_window_s=jain_window_s)
        f.wall_s = wall
        f.extra["maxrss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out.append(f)
    return Comparison(scenario, out, offline_bound(scenario))


def table(c: Comparison) -> list[str]:
    rows = [
        "| policy | done | expired | JCT mean / p95 / p99 (s) | queueing mean / p95 / p99 (s) | "
        "SLO met | Jain (windows) | makespan (s) | wall (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for f in c.figures:
        rows.append(
            f"| {f.policy} | {f.completed:,} | {f.expired:,} | {f.jct_mean:,.1f} / {f.jct_p95:,.1f} / "
            f"{f.jct_p99:,.1f} | {f.wait_mean:,.1f} / {f.wait_p95:,.1f} / {f.wait_p99:,.1f} | "
            f"{_pct(f.slo_attainment)} | {f.jain_mean:.3f} ({f.jain_windows}) | {f.makespan:,.0f} | "
            f"{f.wall_s:.1f} |"
        )
    rows.append(f"| offline bound | | | {c.bound.jct_mean:,.1f} | 0 | | | {c.bound.makespan:,.0f} | |")
    return rows


def _pct(value: float) -> str:
    return "-" if value != value else f"{value:.2%}"
