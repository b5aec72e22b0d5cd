"""Where Switchyard's time goes (the last part of `bench.compare`): sequential tasks split
into stages by their own timestamps, the CPU seconds of every process from /proc during a
no-op run, and the same run under py-spy on every service and on the client.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from bench import mesh as mesh_bench
from bench.baselines.switchyard_bench import OUR_CODE, PROFILE_RATE_HZ, ROOT, _client, _seconds, running_mesh
from switchyard import Client, specs
from switchyard.mesh import Mesh


@dataclass
class Recording:
    name: str
    process: subprocess.Popen[bytes]
    path: Path


def _start_py_spy(py_spy: str, name: str, pid: int, out_dir: Path, *, children: bool) -> Recording:
    path = out_dir / f"{name}.txt"
    argv = [py_spy, "record", "--pid", str(pid), "--format", "raw", "--output", str(path)]
    # --gil: only samples that hold the GIL, so threads parked in C (gRPC's poller, socket
    # reads) do not pose as busy.
    argv += ["--rate", str(PROFILE_RATE_HZ), "--nonblocking", "--gil"]
    argv += ["--subprocesses"] if children else []
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return Recording(name, process, path)


def _stop_py_spy(recording: Recording) -> None:
    recording.process.send_signal(signal.SIGINT)
    try:
        recording.process.wait(30)
    except subprocess.TimeoutExpired:
        recording.process.kill()
        recording.process.wait()


def _proc_stats() -> dict[int, tuple[str, int, float]]:
    """pid → (command name, parent pid, CPU seconds so far) of every process we can read."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, tuple[str, int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        comm, rest = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :].split()
        out[int(entry.name)] = (comm, int(rest[1]), (int(rest[11]) + int(rest[12])) / tick)
    return out


def _owner(pid: int, stats: dict[int, tuple[str, int, float]], roots: dict[int, str]) -> str:
    seen = 0
    while pid in stats and seen < 64:
        if pid in roots:
            return roots[pid]
        pid, seen = stats[pid][1], seen + 1
    return ""


def cpu_seconds(before: dict[int, tuple[str, int, float]], mesh: Mesh) -> dict[str, float]:
    """CPU seconds since `before`, by mesh service, this client, PostgreSQL and the rest."""
    after = _proc_stats()
    roots = {child.pid: name for name, child in mesh.processes.items()} | {os.getpid(): "client"}
    out: dict[str, float] = defaultdict(float)
    for pid, (comm, _, cpu) in after.items():
        used = cpu - (before[pid][2] if pid in before and before[pid][0] == comm else 0.0)
        owner = _owner(pid, after, roots) or ("postgresql" if comm.startswith("postgres") else "other")
        out[owner] += used
    return {name: round(seconds, 2) for name, seconds in sorted(out.items(), key=lambda kv: -kv[1])}


Stamp = Literal["submitted_at", "queued_at", "assigned_at", "started_at", "finished_at"]
STAGES: tuple[tuple[str, Stamp], ...] = (
    ("client → classifier → scheduler commit", "submitted_at"),
    ("queued (enqueue committed)", "queued_at"),
    ("placed by a cycle", "assigned_at"),
    ("dispatched, started on a slot", "started_at"),
    ("ran", "finished_at"),
)


async def latency_stages(client: Client, n: int) -> dict[str, list[float]]:
    """Sequential no-op tasks, each split by its own timestamps into stages (ms); the last
    stage is the result's way back (finished_at → the client has it)."""
    out: dict[str, list[float]] = defaultdict(list)
    for _ in range(n):
        sent = time.time()
        submitted = await client.submit([specs.noop()])
        (task,) = await client.wait(submitted.task_ids, timeout=60, poll_interval=5.0)
        seen = time.time()
        previous = sent
        for stage, field in STAGES:
            at = _seconds(getattr(task, field)) if task.HasField(field) else previous
            out[stage].append((at - previous) * 1000)
            previous = at
        out["result back to the client"].append((seen - previous) * 1000)
    return dict(out)


async def profiled_throughput(tasks: int, out_dir: Path, stage_tasks: int = 200) -> dict[str, Any]:
    """On one mesh: sequential tasks split into stages; a no-op throughput run with the CPU
    time each process used (from /proc); the same run with py-spy on every service and this
    client."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    out_dir.mkdir(parents=True, exist_ok=True)
    async with running_mesh() as mesh, _client(mesh) as client:
        await mesh_bench.latencies(client, 20)
        stages = await latency_stages(client, stage_tasks)
        before, started = _proc_stats(), time.perf_counter()
        rate = await mesh_bench.throughput(client, tasks)
        data: dict[str, Any] = {"tasks_per_s": rate, "wall_s": time.perf_counter() - started}
        data["stages_ms"] = stages
        data["cpu_s"] = cpu_seconds(before, mesh)
        if not Path(py_spy).exists():
            return data | {"error": "py-spy is not installed (pip install the bench extra)"}
        targets = {name: child.pid for name, child in mesh.processes.items()}
        recordings = [_start_py_spy(py_spy, n, pid, out_dir, children=True) for n, pid in targets.items()]
        recordings.append(_start_py_spy(py_spy, "client", os.getpid(), out_dir, children=False))
        await asyncio.sleep(1.0)  # let py-spy attach before the first submit
        try:
            data["sampled_tasks_per_s"] = await mesh_bench.throughput(client, tasks)
        finally:
            for recording in recordings:
                await asyncio.to_thread(_stop_py_spy, recording)
    return data | {"services": {r.name: summarise_profile(r.path) for r in recordings}}


def _frame(raw: str) -> tuple[str, str]:
    """'func (path/to/module.py:12)' → ('func', 'module path without the venv prefix')."""
    func, _, where = raw.rpartition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("/site-packages/", f"{ROOT}/", "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return func or raw, path


def summarise_profile(path: Path, top: int = 8) -> dict[str, Any]:
    """Samples; the functions with most self samples; of our own code (services/, common/,
    switchyard/, bench/), the deepest frame per sample and the inclusive counts."""
    own: Counter[str] = Counter()
    deepest: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    samples = 0
    lines = path.read_text().splitlines() if path.exists() else []
    for line in lines:
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";") if " (" in f]
        if not frames:
            continue
        samples += count
        own[f"{frames[-1][0]} ({frames[-1][1]})"] += count
        ours = [f"{f} ({p})" for f, p in frames if p.startswith(OUR_CODE)]
        if ours:
            deepest[ours[-1]] += count
        for name in set(ours):
            inclusive[name] += count
    return {
        "samples": samples,
        "cpu_s": samples / PROFILE_RATE_HZ,
        "self": own.most_common(top),
        "deepest": deepest.most_common(top),
        "inclusive": inclusive.most_common(top),
    }
