"""Ray baseline: no-op remote functions on a local Ray started with two CPUs.

The same two figures as the Switchyard side: throughput (first submit to the last result
the driver holds) and sequential submit → result latency.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def version() -> str:
    import ray

    return str(ray.__version__)


@contextmanager
def session(num_cpus: int = 2) -> Iterator[Any]:
    """A local Ray (loopback only, no dashboard) and a warmed-up no-op remote function."""
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
