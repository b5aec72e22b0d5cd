"""Run scenarios under every policy and collect figures (used by the CLI and the bench)."""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

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


@dataclass
class Repeated:
    """The same comparison run once per seed (DESIGN §9: medians with their min-max)."""

    seeds: list[int]
    runs: list[Comparison]

    @property
    def scenario(self) -> Scenario:
        return self.runs[0].scenario

    @property
    def policies(self) -> list[str]:
        return [f.policy for f in self.runs[0].figures]

    def of(self, policy: str) -> list[Figures]:
        return [next(f for f in c.figures if f.policy == policy) for c in self.runs]

    def median(self, policy: str, value: Callable[[Figures], float]) -> float:
        return statistics.median(value(f) for f in self.of(policy))

    def spread(self, policy: str, value: Callable[[Figures], float]) -> tuple[float, float, float]:
        """(median, min, max) of one figure over the seeds."""
        xs = [value(f) for f in self.of(policy)]
        return statistics.median(xs), min(xs), max(xs)


def repeat(
    build: Callable[[int], Scenario],
    seeds: Sequence[int],
    config: RunConfig,
    policies: Sequence[str] = tuple(POLICIES),
    jain_window_s: float | None = None,
) -> Repeated:
    """`compare` once per seed: the scenario is built with the seed (its random parts) and
    the run gets it too (execution-time jitter, least-loaded's tie ranks)."""
    runs = [compare(build(seed), policies, replace(config, seed=seed), jain_window_s) for seed in seeds]
    return Repeated(list(seeds), runs)


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
