"""Where Switchyard's time goes (the last part of `bench.compare`): sequential tasks split
into stages by their own timestamps, the CPU seconds of every process from /proc during a
no-op run, and the same run again under cProfile in every service, every worker's slot
processes and this client.

The services profile themselves: the mesh starts with `bench/profiling` first on their
PYTHONPATH, whose `sitecustomize` starts cProfile on SIGUSR2 and writes a pstats file on
SIGUSR1 (its docstring has the details). No external sampler, no ptrace: it works wherever
the services run. The clock is each main thread's CPU time; other threads are not seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import pstats
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

from switchyard.mesh import Mesh


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


# `bench.mesh` imports the CPU accounting above from this module, and `switchyard_bench`
# imports `bench.mesh`: the bench imports come after it, and name modules, not their
# members, so that any of the three can be imported first.
from bench import mesh as mesh_bench  # noqa: E402
from bench.baselines import switchyard_bench  # noqa: E402
from bench.profiling import sitecustomize as profiling  # noqa: E402
from switchyard import Client, specs  # noqa: E402

# How long the services get to acknowledge SIGUSR2 and to write their files after SIGUSR1.
START_TIMEOUT_S = 5.0
WRITE_TIMEOUT_S = 60.0
# The profiler's own frames (the signal handlers) are not "ours" in the summary.
NOT_OURS = ("bench/profiling/",)


Stamp = Literal["submitted_at", "queued_at", "assigned_at", "started_at", "finished_at"]
STAGES: tuple[tuple[str, Stamp], ...] = (
    ("client → classifier (its submitted_at)", "submitted_at"),
    ("classifier → scheduler (queued_at, before the insert commits)", "queued_at"),
    ("placed by a cycle (assigned_at)", "assigned_at"),
    ("sent to the worker, started on a slot (started_at)", "started_at"),
    ("ran (finished_at)", "finished_at"),
)


async def latency_stages(client: Client, n: int) -> dict[str, list[float]]:
    """Sequential no-op tasks, each split by its own timestamps into stages (ms); the last
    stage is the result's way back (finished_at → the client has it)."""
    out: dict[str, list[float]] = defaultdict(list)
    for _ in range(n):
        sent = time.time()
        submitted = await client.submit([specs.noop()])
        (task,) = await client.wait(submitted, timeout=60, poll_interval=5.0)
        seen = time.time()
        previous = sent
        for stage, field in STAGES:
            at = switchyard_bench._seconds(getattr(task, field)) if task.HasField(field) else previous
            out[stage].append((at - previous) * 1000)
            previous = at
        out["terminal write committed, result back to the client"].append((seen - previous) * 1000)
    return dict(out)


@asynccontextmanager
async def profilable_mesh(profile_dir: Path) -> AsyncIterator[Mesh]:
    """`switchyard_bench.running_mesh`, with every service (and its slot processes) able to
    profile itself into `profile_dir` on a signal."""
    path = os.pathsep.join(
        p
        for p in (
            str(switchyard_bench.ROOT / "bench" / "profiling"),
            str(switchyard_bench.ROOT),
            os.environ.get("PYTHONPATH"),
        )
        if p
    )
    env = {"PYTHONPATH": path, profiling.DIR_ENV: str(profile_dir.resolve())}
    name, url = switchyard_bench._create_database()
    try:
        with tempfile.TemporaryDirectory(prefix="switchyard-compare-") as tmp:
            options = dataclasses.replace(switchyard_bench._options(Path(tmp), url), env=env)
            async with Mesh(options, echo=lambda line: None) as mesh:
                yield mesh
    finally:
        switchyard_bench._drop_database(name)


def ready_processes(profile_dir: Path) -> dict[int, str]:
    """pid → profile name of every process that announced itself (`<name>.<pid>.ready`)."""
    out: dict[int, str] = {}
    for path in profile_dir.glob("*.ready"):
        name, pid, _ = path.name.rsplit(".", 2)
        out[int(pid)] = name
    return out


def _clear(profile_dir: Path) -> None:
    profile_dir.mkdir(parents=True, exist_ok=True)
    for pattern in ("*.ready", "*.profiling", "*.prof", "*.prof.part"):
        for path in profile_dir.glob(pattern):
            path.unlink()


def _signal(pids: Iterable[int], signum: int) -> list[int]:
    """Send `signum` to each pid; the ones that still exist."""
    sent = []
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)
            sent.append(pid)
    return sent


async def _wait_for(profile_dir: Path, targets: Mapping[int, str], suffix: str, timeout_s: float) -> set[int]:
    """The pids among `targets` whose `<name>.<pid><suffix>` appeared within timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        done = {pid for pid, name in targets.items() if (profile_dir / f"{name}.{pid}{suffix}").exists()}
        if len(done) == len(targets) or time.monotonic() > deadline:
            return done
        await asyncio.sleep(0.05)


async def profiled_throughput(tasks: int, out_dir: Path, stage_tasks: int = 200) -> dict[str, Any]:
    """On one mesh: sequential tasks split into stages; a no-op throughput run with the CPU
    time each process used (from /proc); the same run with every service, slot process and
    this client profiled (pstats files `<name>.<pid>.prof` in `out_dir`)."""
    _clear(out_dir)
    async with profilable_mesh(out_dir) as mesh, switchyard_bench._client(mesh) as client:
        await mesh_bench.latencies(client, 20)
        stages = await latency_stages(client, stage_tasks)
        before, started = _proc_stats(), time.perf_counter()
        rate = await mesh_bench.throughput(client, tasks)
        data: dict[str, Any] = {"tasks_per_s": rate, "wall_s": time.perf_counter() - started}
        data["stages_ms"] = stages
        data["cpu_s"] = cpu_seconds(before, mesh)
        data |= await _profiled_run(client, mesh, tasks, out_dir)
    return data


def mesh_processes(profile_dir: Path, mesh: Mesh) -> dict[int, str]:
    """`ready_processes` that still run under one of the mesh's lifelines (never signal a
    pid that has been reused by something else)."""
    stats = _proc_stats()
    roots = {child.pid: name for name, child in mesh.processes.items()}
    return {pid: name for pid, name in ready_processes(profile_dir).items() if _owner(pid, stats, roots)}


async def _profiled_run(client: Client, mesh: Mesh, tasks: int, out_dir: Path) -> dict[str, Any]:
    ready = mesh_processes(out_dir, mesh)
    targets = {pid: ready[pid] for pid in _signal(ready, profiling.START_SIGNAL)}
    profiling_pids = await _wait_for(out_dir, targets, ".profiling", START_TIMEOUT_S)
    own = profiling.new_profile()
    own.enable()
    try:
        sampled = await mesh_bench.throughput(client, tasks)
    finally:
        own.disable()
        stopped = {pid: targets[pid] for pid in _signal(profiling_pids, profiling.STOP_SIGNAL)}
    own.dump_stats(out_dir / f"client.{os.getpid()}.prof")
    written = await _wait_for(out_dir, stopped, ".prof", WRITE_TIMEOUT_S)
    missing = sorted({f"{name}.{pid}" for pid, name in targets.items() if pid not in written})
    return {
        "sampled_tasks_per_s": sampled,
        "profiler": "cProfile on the main thread's CPU clock, C functions counted in their callers",
        "services": summarise_profiles(out_dir),
        "not_profiled": missing,
        "unannounced": sorted(set(mesh.processes) - set(targets.values())),
    }


def summarise_profiles(profile_dir: Path, top: int = 8) -> dict[str, dict[str, Any]]:
    """One summary per profile name (the pstats files of its processes added together),
    most profiled CPU first."""
    files: dict[str, list[Path]] = defaultdict(list)
    for path in sorted(profile_dir.glob("*.prof")):
        files[path.name.rsplit(".", 2)[0]].append(path)
    summaries = {name: summarise_profile(paths, top) for name, paths in files.items()}
    return dict(sorted(summaries.items(), key=lambda kv: -kv[1]["cpu_s"]))


Func = tuple[str, int, str]  # pstats' key: (file, line, function)
Edge = tuple[
    int, int, float, float
]  # a caller's share of a function: (calls, primitive, self s, cumulative s)


def _label(func: Func) -> str:
    """'function (module path without the venv or repository prefix)'; builtins by name."""
    path, _, name = func
    if path == "~":
        return name
    for marker in ("/site-packages/", f"{switchyard_bench.ROOT}/", "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})"


def _is_ours(func: Func) -> bool:
    path = func[0].split(f"{switchyard_bench.ROOT}/", 1)[1] if f"{switchyard_bench.ROOT}/" in func[0] else ""
    return path.startswith(switchyard_bench.OUR_CODE) and not path.startswith(NOT_OURS)


def summarise_profile(paths: Path | Iterable[Path], top: int = 8) -> dict[str, Any]:
    """Of pstats files added together: profiled CPU seconds; the functions with most self
    time; of our own code (services/, common/, switchyard/, bench/), the functions by the
    time spent in them and in the library code below them (`deepest`: the nearest function
    of ours above each moment, estimated where a library function has several callers, in
    proportion to their cumulative time, as gprof does) and by cumulative time (`inclusive`).
    Every figure is in seconds of the profiled clock."""
    paths = [paths] if isinstance(paths, Path) else list(paths)
    stats = pstats.Stats(*map(str, paths))
    table: dict[Func, tuple[int, int, float, float, dict[Func, Edge]]] = stats.stats  # type: ignore[attr-defined]
    own: dict[str, float] = defaultdict(float)
    inclusive: dict[str, float] = defaultdict(float)
    for func, (_, _, tt, ct, _) in table.items():
        own[_label(func)] += tt
        if _is_ours(func):
            inclusive[_label(func)] += ct
    deepest = _nearest_ours(table)

    def rounded(seconds: Mapping[str, float]) -> list[tuple[str, float]]:
        return [(name, round(s, 4)) for name, s in sorted(seconds.items(), key=lambda kv: -kv[1])[:top]]

    return {
        "processes": len(paths),
        "cpu_s": round(sum(entry[2] for entry in table.values()), 4),
        "calls": sum(entry[1] for entry in table.values()),
        "self": rounded(own),
        "ours_s": round(sum(deepest.values()), 4),
        "deepest": rounded(deepest),
        "inclusive": rounded(inclusive),
    }


def _nearest_ours(
    table: Mapping[Func, tuple[int, int, float, float, Mapping[Func, Edge]]],
) -> dict[str, float]:
    """Self time credited to the nearest function of ours above it. A library function's
    self time is split among its callers exactly (cProfile keeps it per caller); above that,
    in proportion to each caller's share of the function's cumulative time. Cycles are cut;
    time with no function of ours above (the event loop) is left out.

    SQLAlchemy's asyncio layer switches greenlets, which cProfile records as calls (the
    event loop seemingly called from inside a query): such edges carry little cumulative
    time, so normalising by the function's own cumulative time keeps the loop's time out."""
    memo: dict[Func, dict[Func, float]] = {}

    def above(func: Func, path: frozenset[Func]) -> dict[Func, float]:
        # Where one second spent under `func` (not ours) goes: function of ours → share.
        if func not in memo:
            entry = table.get(func)
            callers = entry[4] if entry is not None and len(path) < 200 else {}
            weights = {c: e[3] for c, e in callers.items() if c not in path}
            # Of the function's whole cumulative time: what no caller accounts for ran with
            # nothing recorded above it (an event loop entered before the profile began).
            total = max(sum(weights.values()), entry[3] if entry is not None else 0.0)
            if total <= 0:  # too short to measure: split evenly
                weights, total = dict.fromkeys(weights, 1.0), float(len(weights))
            shares: dict[Func, float] = defaultdict(float)
            for caller, weight in weights.items():
                for target, share in _up(caller, path).items():
                    shares[target] += share * weight / total
            memo[func] = shares
        return memo[func]

    def _up(caller: Func, path: frozenset[Func]) -> dict[Func, float]:
        return {caller: 1.0} if _is_ours(caller) else above(caller, path | {caller})

    out: dict[Func, float] = defaultdict(float)
    for func, (_, _, tt, _, callers) in table.items():
        if _is_ours(func):
            out[func] += tt
            continue
        for caller, edge in callers.items():
            for target, share in _up(caller, frozenset({func, caller})).items():
                out[target] += edge[2] * share
    labelled: dict[str, float] = defaultdict(float)
    for func, seconds in out.items():
        labelled[_label(func)] += seconds
    return labelled
