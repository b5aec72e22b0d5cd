"""Run the benchmarks and write a report under bench/reports/ (make bench)."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

from bench import placement

REPORTS = Path(__file__).resolve().parent / "reports"


def main() -> int:
    REPORTS.mkdir(exist_ok=True)
    rows = placement.run()
    lines = [
        "# Placement cycle: placements/s of the pure core vs a naive linear scan",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.machine()} "
        f"({platform.python_implementation()} {platform.python_version()}), `make bench`.",
        "Each cycle places tasks from a prebuilt view until every slot (4 per worker) is full;",
        "figures are medians of repeated runs with min-max, no I/O (DESIGN §9).",
        "",
        "| queued | workers | placed | core placements/s (min-max) | naive placements/s (min-max) | ratio |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['queued']:,} | {r['workers']} | {r['placed']} "
            f"| {r['core_median']:,.0f} ({r['core_min']:,.0f}-{r['core_max']:,.0f}) "
            f"| {r['naive_median']:,.0f} ({r['naive_min']:,.0f}-{r['naive_max']:,.0f}) "
            f"| {float(r['core_median']) / float(r['naive_median']):.1f}x |"
        )
    (REPORTS / "placement.md").write_text("\n".join(lines) + "\n")
    (REPORTS / "placement.json").write_text(json.dumps(rows, indent=2) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
