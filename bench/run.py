"""Run benchmarks and write their reports under bench/reports/ (`make bench`).

Usage: python -m bench.run [NAME ...]   (default: all of them)
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

BENCHMARKS = {
    "placement": "bench.placement",
    "mesh": "bench.mesh",
    "takeover": "bench.takeover",
    "submit": "bench.submit",
    "ingest": "bench.ingest",
    "simulate": "bench.simulate",
    "compare": "bench.compare",
}


def main(argv: list[str]) -> int:
    names = argv or [n for n in BENCHMARKS if importlib.util.find_spec(BENCHMARKS[n]) is not None]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    status = 0
    for name in names:
        print(f"== {name}", flush=True)
        status |= importlib.import_module(BENCHMARKS[name]).main()
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
