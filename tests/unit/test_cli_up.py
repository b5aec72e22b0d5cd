"""`switchyard up` plumbing: port plans, service environment, and that no child outlives us."""

from __future__ import annotations

import os
import socket
import sys
import textwrap
import time
from pathlib import Path

import pytest

from switchyard.endpoints import plan_ports
from switchyard.errors import SwitchyardError
from switchyard.mesh import Mesh, MeshError, MeshOptions
from switchyard.processes import ChildProcess
from tests.helpers import free_port

# A "service" that starts a grandchild, writes both pids, and ignores nothing.
SERVICE = textwrap.dedent(
    """
    import subprocess, sys, time
    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    print("pids", grandchild.pid, flush=True)
    time.sleep(120)
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _wait_gone(pid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def _start(tmp_path: Path) -> tuple[ChildProcess, int]:
    env = {**os.environ, "SWITCHYARD_LIFELINE_GRACE_S": "1"}
    child = ChildProcess("fake", [sys.executable, "-c", SERVICE], env=env, log_path=tmp_path / "fake.log")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for line in child.tail():
            if line.startswith("pids "):
                return child, int(line.split()[1])
        time.sleep(0.05)
    raise AssertionError(f"fake service did not start: {child.tail()}")


def test_free_port_plan_is_distinct() -> None:
    plan = plan_ports("127.0.0.1", 0, ["cpu-1", "cpu-2", "gpu-1"])
    ports = [plan.port(n) for n in ("classifier", "scheduler", "profile_store", "cpu-1", "cpu-2", "gpu-1")]
    assert len(set(ports)) == 6
    assert all(p > 0 for p in ports)


def test_fixed_port_plan_follows_the_base() -> None:
    base = free_port()
    plan = plan_ports("127.0.0.1", base, ["cpu-1"])
    assert plan.services == {
        "classifier": base,
        "scheduler": base + 1,
        "profile_store": base + 2,
        "cpu-1": base + 10,
    }


def test_port_in_use_is_reported() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(SwitchyardError) as caught:
            plan_ports("127.0.0.1", port, [])
    assert caught.value.reason == "PORT_IN_USE"


def test_stop_kills_the_whole_group(tmp_path: Path) -> None:
    child, grandchild = _start(tmp_path)
    child.terminate()
    assert _wait_gone(child.pid) or child.exit_code() is not None
    child.kill()
    assert child.exit_code() is not None
    assert _wait_gone(grandchild), "the service's own child survived"


def test_lifeline_stops_the_service_when_the_launcher_goes(tmp_path: Path) -> None:
    child, grandchild = _start(tmp_path)
    assert child._popen.stdin is not None
    child._popen.stdin.close()  # what the kernel does when the launcher dies, even by SIGKILL
    assert _wait_gone(grandchild), "the group outlived its launcher"
    child.kill()  # reaps the lifeline
    assert any("launcher gone" in line for line in child.tail())


def test_service_environment(tmp_path: Path) -> None:
    mesh = Mesh(MeshOptions(data_dir=tmp_path, slots=3, internal_token="x" * 20, base_port=0))
    mesh.ports = plan_ports("127.0.0.1", 0, ["cpu-1", "gpu-1"])
    mesh.gpu_count, mesh.category_profile = 1, "default"
    env = mesh._environment("gpu-1")
    assert env["SWITCHYARD_INTERNAL_TOKEN"] == "x" * 20
    assert env["SWITCHYARD_WORKER_DEVICE"] == "cuda:0"
    assert env["SWITCHYARD_WORKER_WORKER_ID"] == "gpu-1"
    assert env["SWITCHYARD_WORKER_SLOTS"] == "3"
    assert env["SWITCHYARD_WORKER_SCHEDULER_ADDRESS"] == mesh.scheduler_address
    assert env["SWITCHYARD_WORKER_PORT"] == str(mesh.ports.port("gpu-1"))
    classifier = mesh._environment("classifier")
    assert classifier["SWITCHYARD_CLASSIFIER_DATABASE_URL"] == f"sqlite:///{tmp_path.resolve()}/classifier.db"
    assert classifier["SWITCHYARD_CLASSIFIER_SCHEDULER_ADDRESS"] == mesh.scheduler_address
    shared = Mesh(MeshOptions(data_dir=tmp_path, database_url="postgresql://db/x"))
    assert shared.database_url("scheduler") == "postgresql://db/x"


async def test_a_service_that_exits_fails_the_start_clearly(tmp_path: Path) -> None:
    options = MeshOptions(
        data_dir=tmp_path,
        base_port=0,
        gpu_workers=0,
        cpu_workers=1,
        startup_timeout_s=60,
        env={"SWITCHYARD_PROFILE_STORE_GRACE_PERIOD_S": "-1"},  # an invalid setting: exits at start
    )
    mesh = Mesh(options)
    with pytest.raises(MeshError) as caught:
        await mesh.start()
    assert caught.value.reason == "SERVICE_EXITED"
    assert caught.value.service == "profile_store"
    assert any("grace_period_s" in line for line in caught.value.log_tail)
    assert all(c.exit_code() is not None for c in mesh.processes.values())
