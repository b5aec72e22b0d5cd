"""`switchyard simulate`: replay a trace (or the synthetic fleet) under each policy."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, replace
from pathlib import Path

from services.scheduler.simulator import scenarios
from services.scheduler.simulator.loop import RunConfig
from services.scheduler.simulator.policies import POLICIES
from services.scheduler.simulator.run import compare, table


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("scenario", choices=[*scenarios.SCENARIOS, "synthetic"])
    p.add_argument("--traces", type=Path, default=scenarios.DEFAULT_TRACES, help="trace directory")
    p.add_argument("--policy", action="append", choices=list(POLICIES), help="repeatable; default all")
    p.add_argument("--load", type=float, help="target offered load (sets the time compression)")
    p.add_argument("--limit", type=int, help="only the first N trace rows")
    p.add_argument("--workers", type=int, default=1000, help="synthetic: workers")
    p.add_argument("--tasks", type=int, default=10_000, help="synthetic: tasks")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reprioritize-s", type=float, help="virtual seconds between reprioritizations")
    p.add_argument("--half-life-s", type=float, help="fair-share usage half-life (virtual s)")
    p.add_argument("--dampening", type=float, help="fair-share dampening factor (1 = classic)")
    p.add_argument("--jitter", type=float, help="lognormal sigma of execution-time noise")
    p.add_argument("--jain-window-s", type=float, help="window of Jain's index over backlogged tenants")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")


def run(args: argparse.Namespace) -> int:
    kw: dict[str, float] = {} if args.load is None else {"load": args.load}
    if args.scenario == "synthetic":
        scenario = scenarios.synthetic_fleet(args.workers, args.tasks, seed=args.seed, **kw)
    else:
        build = scenarios.SCENARIOS[args.scenario]
        scenario = build(args.traces, limit=args.limit, **kw)
    config = scenarios.RUN_CONFIGS.get(args.scenario, RunConfig())
    changes = {
        "reprioritize_s": args.reprioritize_s,
        "half_life_s": args.half_life_s,
        "fair_share_dampening": args.dampening,
        "jitter": args.jitter,
    }
    config = replace(config, seed=args.seed, **{k: v for k, v in changes.items() if v is not None})
    result = compare(scenario, args.policy or list(POLICIES), config, args.jain_window_s)
    if args.json:
        print(json.dumps([asdict(f) for f in result.figures], indent=2, default=str))
        return 0
    print(f"scenario {scenario.name}: {len(scenario.cluster.workers):,} workers; SLO: {scenario.slo}")
    for line in scenario.assumptions:
        print(f"  - {line}")
    print("\n".join(table(result)))
    return 0
