"""Celery baseline: a prefork worker (two processes) on our own Redis, broker and backend.

`session()` starts a private redis-server on a free loopback port (no RDB snapshots, no
AOF) and one Celery worker, and stops both afterwards; the system Redis is never touched.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

REDIS_SERVER = "/usr/bin/redis-server"
ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 120.0  # a loaded 2-CPU machine can take a minute to fork the worker


def versions() -> dict[str, str]:
    import celery
    import redis

    server = subprocess.run([REDIS_SERVER, "--version"], capture_output=True, text=True, check=False)
    return {
        "celery": str(celery.__version__),
        "redis (client)": str(redis.__version__),
        "redis-server": server.stdout.split()[2].removeprefix("v=") if server.stdout else "?",
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(process: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    """SIGTERM the process group we started, then SIGKILL what is left of it."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _until(ready: Any, what: str, timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with suppress(Exception):
            if ready():
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} not ready after {timeout_s:g}s")


@contextmanager
def _redis_server(log_dir: Path) -> Iterator[str]:
    port = free_port()
    argv = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    argv += ["--dir", str(log_dir), "--logfile", str(log_dir / "redis.log")]
    process = subprocess.Popen(argv, start_new_session=True)
    try:
        import redis

        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
        _until(client.ping, f"redis-server on port {port}")
        client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop(process)


@contextmanager
def session(concurrency: int = 2) -> Iterator[Any]:
    """Our own Redis and a Celery worker; yields the warmed-up no-op task."""
    with tempfile.TemporaryDirectory(prefix="switchyard-celery-") as tmp, _redis_server(Path(tmp)) as url:
        from bench.baselines.celery_app import NOOP, make_app

        app = make_app(url)
        argv = [sys.executable, "-m", "celery", "-A", "bench.baselines.celery_app", "worker"]
        argv += [f"--concurrency={concurrency}", "-P", "prefork", "--loglevel=WARNING"]
        argv += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        env = os.environ | {"BENCH_CELERY_REDIS": url, "PYTHONPATH": str(ROOT)}
        with open(Path(tmp) / "worker.log", "wb") as log:
            worker = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        try:
            noop = app.signature(NOOP)
            # Ready when a task makes the round trip (bounded by START_TIMEOUT_S).
            noop.delay().get(timeout=START_TIMEOUT_S)
            yield noop
        finally:
            _stop(worker)
            app.close()


def throughput(noop: Any, n: int) -> float:
    from celery import group

    started = time.perf_counter()
    group(noop.clone() for _ in range(n)).apply_async().get(timeout=600)
    return n / (time.perf_counter() - started)


def latencies(noop: Any, n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        noop.delay().get(timeout=60, interval=0.001)
        out.append(time.perf_counter() - started)
    return out
