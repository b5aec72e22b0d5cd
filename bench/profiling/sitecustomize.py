"""In-process profiling by signal, for the benchmark (`bench.baselines.switchyard_profile`).

Python imports `sitecustomize` at start-up from the first directory on sys.path that has
one; the benchmark puts this directory first on the services' PYTHONPATH. When
SWITCHYARD_BENCH_PROFILE_DIR is set, the process:

- writes `<dir>/<name>.<pid>.ready` at once, so the benchmark knows the real pids (a mesh
  service runs under a lifeline process: `Mesh.processes[...].pid` is not the service);
- on SIGUSR2 starts cProfile on its main thread and writes `<name>.<pid>.profiling`;
- on SIGUSR1 stops it and writes the statistics to `<name>.<pid>.prof` (pstats format,
  written under another name and renamed, so a reader never sees half a file).

The clock is the main thread's CPU time (`time.thread_time`): time parked in epoll or a
blocking read costs nothing, like an on-CPU sampler. Other threads are not profiled.

`<name>`: `python -m services.worker` → the worker id (`cpu-1`); `python -m services.X` → X;
a worker's slot processes (multiprocessing "spawn" children) → `<worker id>.slot`; any process
→ SWITCHYARD_BENCH_PROFILE_NAME where set. Any other process (a resource tracker, a tool) is
left alone. Standard library only.
"""

from __future__ import annotations

import cProfile
import os
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import FrameType

DIR_ENV = "SWITCHYARD_BENCH_PROFILE_DIR"
WORKER_ID_ENV = "SWITCHYARD_WORKER_WORKER_ID"
# Profile any other process under this name (a tool, a test).
NAME_ENV = "SWITCHYARD_BENCH_PROFILE_NAME"
START_SIGNAL = signal.SIGUSR2
STOP_SIGNAL = signal.SIGUSR1


def process_name(argv: list[str], environ: Mapping[str, str]) -> str:
    """The profile's name for a process started as `argv` (sys.orig_argv), '' to skip it."""
    if environ.get(NAME_ENV):
        return environ[NAME_ENV]
    worker = environ.get(WORKER_ID_ENV, "")
    if "--multiprocessing-fork" in argv and any("spawn_main" in a for a in argv):
        return f"{worker}.slot" if worker else ""
    module = _main_module(argv)
    if module.startswith("services."):
        service = module.split(".")[1]
        return (worker or "worker") if service == "worker" else service
    return ""


def _main_module(argv: list[str]) -> str:
    """X of `python [options] -m X ...`, else ''."""
    args = iter(argv[1:])
    for arg in args:
        if arg == "-m":
            return next(args, "")
        if arg in ("-X", "-W"):
            next(args, None)
        elif arg == "-c" or not arg.startswith("-"):
            return ""  # a command or a script: its own arguments follow
    return ""


def new_profile() -> cProfile.Profile:
    """cProfile on the calling thread's CPU clock. builtins=False: a C function's time counts
    as its Python caller's own, and the profile costs about half as much (half the calls
    in a service are calls of builtins)."""
    return cProfile.Profile(time.thread_time, builtins=False)


class SignalProfiler:
    """One cProfile run per SIGUSR2 … SIGUSR1 pair, written to `<dir>/<name>.<pid>.prof`."""

    def __init__(self, directory: Path, name: str) -> None:
        self.stem = directory / f"{name}.{os.getpid()}"
        self.profile: cProfile.Profile | None = None

    def install(self) -> None:
        self.stem.parent.mkdir(parents=True, exist_ok=True)
        signal.signal(START_SIGNAL, self._start)
        signal.signal(STOP_SIGNAL, self._stop)
        self._touch(".ready")

    def _touch(self, suffix: str) -> None:
        Path(f"{self.stem}{suffix}").write_text(" ".join(sys.orig_argv))

    def _start(self, signum: int, frame: FrameType | None) -> None:
        if self.profile is None:
            self.profile = new_profile()
            self.profile.enable()
            self._touch(".profiling")

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        profile, self.profile = self.profile, None
        if profile is None:
            return
        profile.disable()
        partial = Path(f"{self.stem}.prof.part")
        profile.dump_stats(partial)
        partial.replace(f"{self.stem}.prof")


def _install() -> None:
    directory = os.environ.get(DIR_ENV)
    name = process_name(sys.orig_argv, os.environ) if directory else ""
    if directory and name:
        SignalProfiler(Path(directory), name).install()


_install()
