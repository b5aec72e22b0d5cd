"""Which event loop a service runs on: uvloop when installed, asyncio's on request or
without it, and a clear exit for a bad setting."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
import uvloop

from common.server import event_loop_runner


def test_uvloop_by_default_and_asyncio_on_request() -> None:
    assert event_loop_runner({}) is uvloop.run
    assert event_loop_runner({"SWITCHYARD_EVENT_LOOP": "uvloop"}) is uvloop.run
    assert event_loop_runner({"SWITCHYARD_EVENT_LOOP": "asyncio"}) is asyncio.run


def test_without_uvloop_auto_falls_back_and_uvloop_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now raises ImportError
    assert event_loop_runner({}) is asyncio.run
    with pytest.raises(SystemExit, match="not installed"):
        event_loop_runner({"SWITCHYARD_EVENT_LOOP": "uvloop"})


def test_a_bad_setting_stops_with_its_name() -> None:
    with pytest.raises(SystemExit, match="SWITCHYARD_EVENT_LOOP"):
        event_loop_runner({"SWITCHYARD_EVENT_LOOP": "trio"})


ROUND_TRIP = """
import asyncio, grpc, uvloop
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from common.server import event_loop_runner

async def round_trip():
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    await server.stop(None)
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(type(asyncio.get_running_loop()).__module__, status)

event_loop_runner({})(round_trip())
"""


def test_a_service_loop_serves_and_calls_grpc_on_uvloop() -> None:
    """In a process of its own, as a service has it: a health check round trip on the loop."""
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", ROUND_TRIP], cwd=root, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["uvloop", "SERVING"]
