"""Ray baseline: no-op remote functions on a local Ray started with two CPUs.

The same two figures as the Switchyard side: throughput (first submit to the last result
the driver holds) and sequential submit → result latency. `bench.compare` runs each Ray
session in its own process (`python -m bench.baselines.ray_bench N M`, JSON on stdout):
Ray installs process-wide signal handlers and global state that would outlive
`ray.shutdown()` in the benchmark's own process, and its loopback setting below must be in
the environment before `ray` is first imported.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def version() -> str:
    import ray

    return str(ray.__version__)


# Before `import ray`: on Linux, Ray resolves 127.0.0.1 to the host's routable address
# unless clustering is off; usage stats would try to reach the network.
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


@contextmanager
def session(num_cpus: int = 2) -> Iterator[Any]:
    """A local Ray (loopback only, no dashboard) and a warmed-up no-op remote function."""
    os.environ.update(LOOPBACK_ENV)
    import ray

    ray.init(
        num_cpus=num_cpus,
        include_dashboard=False,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
        configure_logging=False,
    )
    try:

        @ray.remote
        def noop() -> None:
            return None

        ray.get([noop.remote() for _ in range(200)])  # start the worker processes
        yield noop
    finally:
        ray.shutdown()


def throughput(noop: Any, n: int) -> float:
    import ray

    started = time.perf_counter()
    ray.get([noop.remote() for _ in range(n)], timeout=600)
    return n / (time.perf_counter() - started)


def latencies(noop: Any, n: int) -> list[float]:
    import ray

    out = []
    for _ in range(n):
        started = time.perf_counter()
        ray.get(noop.remote(), timeout=60)
        out.append(time.perf_counter() - started)
    return out


def main(argv: list[str]) -> int:
    """`python -m bench.baselines.ray_bench THROUGHPUT_TASKS SEQUENTIAL_TASKS` → JSON."""
    throughput_tasks, sequential_tasks = int(argv[0]), int(argv[1])
    with session() as noop:
        rate = throughput(noop, throughput_tasks)
        lat = latencies(noop, sequential_tasks)
    print(json.dumps({"tasks_per_s": rate, "latencies_s": lat}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
