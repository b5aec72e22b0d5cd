"""Standby takeover time: two scheduler processes on one PostgreSQL database; the active
one is killed with SIGKILL; the figure is the time until the standby reports SERVING on
gRPC health (its advisory lock acquired, queues rebuilt from the database)."""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from bench.report import header, spread, write
from switchyard.endpoints import free_ports, is_serving

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REPEATS = 5


def _start(port: int, url: str, log: Path) -> subprocess.Popen[bytes]:
    env = dict(
        os.environ,
        SWITCHYARD_SCHEDULER_PORT=str(port),
        SWITCHYARD_SCHEDULER_DATABASE_URL=url,
        SWITCHYARD_INTERNAL_TOKEN="bench-internal-token-0123456789",
        SWITCHYARD_SCHEDULER_PROFILE_STORE_ADDRESS="127.0.0.1:1",
        SWITCHYARD_SCHEDULER_CLASSIFIER_ADDRESS="127.0.0.1:1",
    )
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "services.scheduler"], env=env, stdout=out, stderr=out)


async def _wait_serving(address: str, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if await is_serving(address, timeout=0.5):
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    raise TimeoutError(f"{address} not SERVING after {timeout}s")


async def once(url: str, logs: Path) -> float:
    a_port, b_port = free_ports("127.0.0.1", 2)
    leader = _start(a_port, url, logs / "leader.log")
    standby: subprocess.Popen[bytes] | None = None
    try:
        await _wait_serving(f"127.0.0.1:{a_port}", 60)
        standby = _start(b_port, url, logs / "standby.log")
        await asyncio.sleep(3.0)  # let it start and settle as a standby
        assert not await is_serving(f"127.0.0.1:{b_port}", timeout=1.0), "the standby must wait"
        killed = time.monotonic()
        leader.send_signal(signal.SIGKILL)
        await _wait_serving(f"127.0.0.1:{b_port}", 60)
        return time.monotonic() - killed
    finally:
        for proc in (leader, standby):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()


async def measure() -> list[float]:
    name = f"switchyard_takeover_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = []
            for _ in range(REPEATS):
                out.append(await once(url, Path(tmp)))
                print(f"takeover: {out[-1]:.2f}s")
            return out
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> int:
    seconds = asyncio.run(measure())
    lines = header(
        "Scheduler standby takeover on PostgreSQL",
        "make bench BENCH=takeover   (python -m bench.run takeover)",
        [
            "Two `python -m services.scheduler` processes on one database; the active one is killed",
            "with SIGKILL; measured from the kill to the standby answering SERVING on gRPC health",
            "(PostgreSQL ends the dead session and its advisory lock; the standby polls the lock",
            f"every 0.5 s, then rebuilds its queues). {REPEATS} runs: median (min-max).",
        ],
    )
    lines += ["| figure | seconds |", "|---|---:|", f"| takeover | {spread(seconds, ',.2f')} |"]
    print("\n".join(lines))
    print(
        f"report: {write('takeover', lines, {'takeover_s': seconds, 'median_s': statistics.median(seconds)})}"
    )
    return 0
