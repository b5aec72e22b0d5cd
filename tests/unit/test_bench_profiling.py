"""The benchmark's in-process profiler: which processes name themselves, a process that
profiles itself on SIGUSR2/SIGUSR1, and the summary of pstats files."""

from __future__ import annotations

import marshal
import os
import pstats
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bench import compare_report
from bench.baselines import switchyard_bench, switchyard_profile
from bench.baselines.switchyard_profile import ready_processes, summarise_profile, summarise_profiles
from bench.profiling import sitecustomize as profiling
from tests.helpers import assert_eventually

ROOT = switchyard_bench.ROOT
PY = "/usr/bin/python3"
SPAWN = "from multiprocessing.spawn import spawn_main; spawn_main(tracker_fd=5, pipe_handle=7)"


@pytest.mark.parametrize(
    ("argv", "environ", "name"),
    [
        ([PY, "-m", "services.scheduler"], {}, "scheduler"),
        ([PY, "-m", "services.profile_store"], {}, "profile_store"),
        ([PY, "-m", "services.worker"], {profiling.WORKER_ID_ENV: "cpu-2"}, "cpu-2"),
        ([PY, "-m", "services.worker", "--device", "cpu"], {}, "worker"),
        ([PY, "-X", "dev", "-u", "-m", "services.classifier"], {}, "classifier"),
        ([PY, "-c", "print()"], {profiling.NAME_ENV: "tool"}, "tool"),
        ([PY, "-c", SPAWN, "--multiprocessing-fork"], {profiling.WORKER_ID_ENV: "gpu-1"}, "gpu-1.slot"),
        ([PY, "-c", SPAWN, "--multiprocessing-fork"], {}, ""),  # not a worker's slot
        ([PY, "-c", "from multiprocessing.resource_tracker import main;main(5)"], {}, ""),
        ([PY, "-m", "pytest"], {}, ""),
        ([PY, "-I", "switchyard/processes.py", PY, "-m", "services.scheduler"], {}, ""),  # a lifeline
    ],
)
def test_process_name(argv: list[str], environ: dict[str, str], name: str) -> None:
    assert profiling.process_name(argv, environ) == name


SPIN = """
import time

def busy_work():
    return sum(i * i for i in range(2000))

while True:
    busy_work()
    time.sleep(0.001)
"""


async def test_a_process_profiles_itself_between_the_two_signals(tmp_path: Path) -> None:
    out = tmp_path / "profiles"
    env = os.environ | {
        "PYTHONPATH": str(ROOT / "bench" / "profiling"),
        profiling.DIR_ENV: str(out),
        profiling.NAME_ENV: "spin",
    }
    process = subprocess.Popen([sys.executable, "-c", textwrap.dedent(SPIN)], env=env)
    try:
        await assert_eventually(lambda: ready_processes(out) == {process.pid: "spin"}, msg="ready file")
        stem = out / f"spin.{process.pid}"
        os.kill(process.pid, profiling.START_SIGNAL)
        await assert_eventually(lambda: Path(f"{stem}.profiling").exists(), msg="profiling started")
        await assert_eventually(lambda: not Path(f"{stem}.prof").exists())
        os.kill(process.pid, profiling.STOP_SIGNAL)
        await assert_eventually(lambda: Path(f"{stem}.prof").exists(), msg="profile written")
        assert process.poll() is None, "the signals must not stop the process"
    finally:
        process.kill()
        process.wait()
    functions = {name for _, _, name in pstats.Stats(f"{stem}.prof").stats}  # type: ignore[attr-defined]
    assert "busy_work" in functions
    summary = summarise_profiles(out)["spin"]
    assert summary["processes"] == 1 and summary["cpu_s"] > 0
    assert any(name.startswith("<genexpr>") for name, _ in summary["self"])
    assert summary["deepest"] == [] and summary["ours_s"] == 0  # not under the repository


def test_without_the_directory_variable_nothing_is_installed(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != profiling.DIR_ENV}
    env["PYTHONPATH"] = str(ROOT / "bench" / "profiling")
    code = "import signal, sitecustomize; print(signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL)"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "True"


def test_ready_files_name_processes_with_dots(tmp_path: Path) -> None:
    for name in ("cpu-1.slot.41.ready", "scheduler.7.ready", "cpu-1.slot.41.profiling"):
        (tmp_path / name).write_text("")
    assert ready_processes(tmp_path) == {41: "cpu-1.slot", 7: "scheduler"}


def _func(path: str, name: str) -> tuple[str, int, str]:
    return (path, 1, name)


OURS_A = _func(f"{ROOT}/services/a.py", "a")
OURS_B = _func(f"{ROOT}/common/b.py", "b")
HANDLER = _func(f"{ROOT}/bench/profiling/sitecustomize.py", "_stop")
LIBRARY = _func("/venv/lib/python3.11/site-packages/lib.py", "lib")
BUILTIN = _func("~", "<built-in method x>")
LOOP = _func("/usr/lib/python3.11/asyncio/base_events.py", "_run_once")
RUN = _func("/usr/lib/python3.11/asyncio/events.py", "_run")
# pstats' table: function → (primitive calls, calls, self s, cumulative s, {caller: edge}),
# an edge being (calls, primitive calls, self s, cumulative s) of the function under that caller.
TABLE = {
    OURS_A: (1, 1, 1.0, 5.5, {LOOP: (1, 1, 1.0, 5.5)}),
    OURS_B: (1, 1, 0.5, 2.0, {}),
    HANDLER: (1, 1, 0.25, 0.25, {}),
    LIBRARY: (2, 2, 2.0, 6.0, {OURS_A: (1, 1, 1.5, 4.5), OURS_B: (1, 1, 0.5, 1.5)}),
    BUILTIN: (1, 1, 4.0, 4.0, {LIBRARY: (1, 1, 4.0, 4.0)}),
    # Entered before the profile began, so mostly no caller; once "called" from b, as a
    # greenlet switch looks to cProfile: a tenth of its cumulative time.
    LOOP: (1, 1, 3.0, 8.5, {OURS_B: (1, 1, 0.3, 0.85)}),
    RUN: (1, 1, 1.0, 1.0, {LOOP: (1, 1, 1.0, 1.0)}),
}


def test_summary_credits_library_time_to_the_nearest_function_of_ours(tmp_path: Path) -> None:
    path = tmp_path / "x.1.prof"
    path.write_bytes(marshal.dumps(TABLE))
    summary = summarise_profile(path, top=3)
    assert summary["processes"] == 1 and summary["calls"] == 8
    assert summary["cpu_s"] == pytest.approx(11.75)
    assert summary["self"][:2] == [("<built-in method x>", 4.0), ("_run_once (asyncio/base_events.py)", 3.0)]
    # a: 1 own + 1.5 of lib's own under a + 3/4 of the builtin under lib (a's share of lib's
    # cumulative time); b: 0.5 + 0.5 + 1/4 of 4, + the loop's 0.3 under b + a tenth of _run's
    # 1.0. The rest of the loop and the profiler's handler: left out.
    assert summary["deepest"] == [("a (services/a.py)", 5.5), ("b (common/b.py)", pytest.approx(2.4))]
    assert summary["ours_s"] == pytest.approx(7.9)
    assert summary["inclusive"] == [("a (services/a.py)", 5.5), ("b (common/b.py)", 2.0)]


def test_report_section_renders_the_summaries(tmp_path: Path) -> None:
    (tmp_path / "scheduler.7.prof").write_bytes(marshal.dumps(TABLE))
    profile = {
        "tasks_per_s": 2000.0,
        "sampled_tasks_per_s": 1000.0,
        "wall_s": 1.5,
        "cpu_s": {"scheduler": 1.0},
        "services": summarise_profiles(tmp_path),
        "not_profiled": [],
        "unannounced": ["cpu-2"],
    }
    text = "\n".join(compare_report._profile_lines(profile, 3000))
    assert "(50% slower)" in text
    assert "| scheduler | 11.75 | 67% | `<built-in method x>` 34% | `a (services/a.py)` 47% |" in text
    assert "Not profiled (no start-up file, or no profile written in time): cpu-2." in text


def test_the_profiler_signals_are_free_in_the_services() -> None:
    """The profiler owns SIGUSR1/SIGUSR2: no service, shared module or launcher may use them."""
    assert {profiling.START_SIGNAL, profiling.STOP_SIGNAL} == {signal.SIGUSR2, signal.SIGUSR1}
    root = Path(__file__).resolve().parents[2]
    users = [
        str(path.relative_to(root))
        for folder in ("services", "common", "switchyard")
        for path in (root / folder).rglob("*.py")
        if "SIGUSR" in path.read_text()
    ]
    assert users == []
    assert switchyard_profile.NOT_OURS == ("bench/profiling/",)
