"""SIGKILL of a `python -m services.profile_store` process on PostgreSQL in the middle of an
ingest stream: every acknowledged metric survives, and resending the rest ends exact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import psycopg
from grpc_health.v1 import health_pb2, health_pb2_grpc

from common.channels import authed_channel
from common.tokens import sign_assignment
from switchyard.v1 import profile_store_pb2, profile_store_pb2_grpc, types_pb2
from tests.conftest import ROOT
from tests.helpers import assert_eventually

TOKEN = "crash-test-internal-token"
N, BATCH = 3000, 100
STARTUP_S = 60.0


class StoreProcess:
    """The profile store as its own process, on a port it picks (read from its log)."""

    def __init__(self, pg_url: str, log: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_")}
        env.update(
            SWITCHYARD_PROFILE_STORE_PORT="0",
            SWITCHYARD_PROFILE_STORE_DATABASE_URL=pg_url,
            SWITCHYARD_PROFILE_STORE_INTERNAL_TOKEN=TOKEN,
            SWITCHYARD_PROFILE_STORE_CLASSIFIER_ADDRESS="",
            SWITCHYARD_PROFILE_STORE_LOG_FORMAT="json",
        )
        self.log = log
        self._out = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.profile_store"],
            cwd=ROOT,
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )

    def port(self) -> int:
        assert self.proc.poll() is None, self.log.read_text()
        for line in self.log.read_text().splitlines():
            if '"profile store ready"' in line:
                return int(json.loads(line)["port"])
        return 0

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=STARTUP_S)
        self._out.close()


async def started(pg_url: str, log: Path) -> tuple[StoreProcess, str]:
    process = StoreProcess(pg_url, log)
    port = await assert_eventually(process.port, timeout=STARTUP_S, interval=0.1, msg="profile store ready")
    address = f"127.0.0.1:{port}"
    async with authed_channel(address, None) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    return process, address


def metric(i: int) -> types_pb2.ResultMetrics:
    task_id = f"task-{i:05d}"
    m = types_pb2.ResultMetrics(
        task_id=task_id, attempt=1, worker_id="w1", device_model="cpu", category="inference",
        tenant=f"t{i % 4}", outcome=types_pb2.OUTCOME_SUCCEEDED,
        assignment_token=sign_assignment(TOKEN, task_id, 1, "w1"),
    )  # fmt: skip
    m.execution_time.FromMilliseconds(10 + i % 50)
    return m


def stored_ids(pg_url: str) -> set[str]:
    with psycopg.connect(pg_url) as conn:
        return {row[0] for row in conn.execute("SELECT task_id FROM profile_store.metric_samples")}


async def test_killed_mid_stream_loses_no_acknowledged_metric(pg_url: str, tmp_path: Path) -> None:
    metrics = [metric(i) for i in range(N)]
    batches = [metrics[i : i + BATCH] for i in range(0, N, BATCH)]
    acked: set[str] = set()
    first, address = await started(pg_url, tmp_path / "first.log")
    try:
        async with authed_channel(address, TOKEN) as channel:
            call = profile_store_pb2_grpc.ProfileStoreServiceStub(channel).IngestMetrics()
            for batch in batches[:10]:
                await call.write(profile_store_pb2.IngestMetricsRequest(metrics=batch))
                response = await call.read()
                assert isinstance(response, profile_store_pb2.IngestMetricsResponse)
                acked |= {a.task_id for a in response.acks if a.status.code == 0}
            # Two more batches in flight, unacknowledged, when the process dies.
            for batch in batches[10:12]:
                await call.write(profile_store_pb2.IngestMetricsRequest(metrics=batch))
            first.kill()
            try:
                await call.read()
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        first.kill()
    assert len(acked) == 10 * BATCH
    after_crash = stored_ids(pg_url)
    assert acked <= after_crash  # nothing acknowledged was lost
    assert len(after_crash) <= 12 * BATCH

    second, address = await started(pg_url, tmp_path / "second.log")
    try:
        async with authed_channel(address, TOKEN) as channel:
            stub = profile_store_pb2_grpc.ProfileStoreServiceStub(channel)
            call = stub.IngestMetrics()
            unacked = [m for m in metrics if m.task_id not in acked]
            duplicates = 0
            for start in range(0, len(unacked), BATCH):
                await call.write(
                    profile_store_pb2.IngestMetricsRequest(metrics=unacked[start : start + BATCH])
                )
                response = await call.read()
                assert isinstance(response, profile_store_pb2.IngestMetricsResponse)
                assert all(a.status.code == 0 for a in response.acks)
                duplicates += sum(a.duplicate for a in response.acks)
            await call.done_writing()
            # Whatever of the in-flight batches had committed came back as duplicates.
            assert duplicates == len(after_crash) - len(acked)
            profiles = await stub.ListProfiles(profile_store_pb2.ListProfilesRequest())
            assert [p.count for p in profiles.profiles] == [N]
    finally:
        second.kill()
    assert len(stored_ids(pg_url)) == N
