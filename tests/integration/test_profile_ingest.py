"""IngestMetrics over the real stream into the real ProfileStoreApp on PostgreSQL: bad
input rejected item by item (the stream goes on), quantiles within the sketch's error,
resends not double counted."""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2

from common.channels import authed_channel
from common.tokens import sign_assignment
from services.profile_store.app import ProfileStoreApp
from services.profile_store.config import ProfileStoreConfig
from services.profile_store.stats import RELATIVE_ACCURACY
from switchyard.v1 import profile_store_pb2, profile_store_pb2_grpc, types_pb2

TOKEN = "ingest-test-internal-token"
if TYPE_CHECKING:
    Stub = profile_store_pb2_grpc.ProfileStoreServiceAsyncStub


@pytest.fixture
async def stub(pg_url: str) -> AsyncIterator[Stub]:
    config = ProfileStoreConfig(
        port=0, database_url=pg_url, internal_token=TOKEN, classifier_address="", ingest_batch_max=1000
    )
    app = ProfileStoreApp(config)
    await app.start()
    assert app.server is not None
    try:
        async with authed_channel(f"127.0.0.1:{app.server.port}", TOKEN) as channel:
            yield profile_store_pb2_grpc.ProfileStoreServiceStub(channel)
    finally:
        await app.stop()


def metric(task_id: str, nanos: int = 250_000_000, tenant: str = "acme") -> types_pb2.ResultMetrics:
    m = types_pb2.ResultMetrics(
        task_id=task_id, attempt=1, worker_id="gpu-0", device_model="h100",
        model=types_pb2.ModelRef(name="resnet", version="1"), precision=types_pb2.PRECISION_FP16,
        batch_size=8, category="inference", tenant=tenant, outcome=types_pb2.OUTCOME_SUCCEEDED,
        gpu_utilization=0.9, cpu_utilization=0.2, gpu_power_watts=350.0, items_per_second=32.0,
        assignment_token=sign_assignment(TOKEN, task_id, 1, "gpu-0"),
    )  # fmt: skip
    m.execution_time.FromNanoseconds(nanos)
    return m


KEY = types_pb2.ProfileKey(
    device_model="h100", model=types_pb2.ModelRef(name="resnet", version="1"),
    precision=types_pb2.PRECISION_FP16, batch_bucket=8, category="inference",
)  # fmt: skip


def _set(field: str, value: Any) -> Callable[[types_pb2.ResultMetrics], None]:
    return lambda m: setattr(m, field, value)


def _negative(field: str) -> Callable[[types_pb2.ResultMetrics], None]:
    def mutate(m: types_pb2.ResultMetrics) -> None:
        getattr(m, field).CopyFrom(duration_pb2.Duration(seconds=-2))

    return mutate


def _forged(m: types_pb2.ResultMetrics) -> None:
    m.assignment_token = sign_assignment("another-secret", m.task_id, m.attempt, m.worker_id)


# (case, how to spoil a good metric, the status code, the field the rejection names)
BAD = [
    ("forged token", _forged, 7, "assignment_token"),
    ("token of another attempt", _set("attempt", 2), 7, "assignment_token"),
    ("negative execution time", _negative("execution_time"), 3, "execution_time"),
    ("negative queue wait", _negative("queue_wait"), 3, "queue_wait"),
    ("NaN items/s", _set("items_per_second", math.nan), 3, "items_per_second"),
    ("infinite power", _set("gpu_power_watts", math.inf), 3, "gpu_power_watts"),
    ("-inf cpu utilisation", _set("cpu_utilization", -math.inf), 3, "cpu_utilization"),
    ("NaN gpu utilisation", _set("gpu_utilization", math.nan), 3, "gpu_utilization"),
    ("utilisation over 1", _set("gpu_utilization", 1.5), 3, "gpu_utilization"),
    ("utilisation in percent", _set("cpu_utilization", 85.0), 3, "cpu_utilization"),
    ("negative utilisation", _set("cpu_utilization", -0.1), 3, "cpu_utilization"),
    ("negative memory", _set("memory_bytes", -1), 3, "memory_bytes"),
]


def named_field(status: status_pb2.Status) -> set[str]:
    """The fields a rejection names: BadRequest violations, or ErrorInfo's `field`."""
    fields: set[str] = set()
    for holder in status.details:
        bad, info = error_details_pb2.BadRequest(), error_details_pb2.ErrorInfo()
        if holder.Unpack(bad):
            fields |= {v.field for v in bad.field_violations}
        elif holder.Unpack(info) and "field" in info.metadata:
            fields.add(info.metadata["field"])
    return fields


async def test_bad_input_is_rejected_by_field_and_the_stream_goes_on(stub: Stub) -> None:
    call = stub.IngestMetrics()
    for i, (case, spoil, code, field) in enumerate(BAD):
        bad = metric(f"bad{i}")
        spoil(bad)
        await call.write(profile_store_pb2.IngestMetricsRequest(metrics=[bad, metric(f"good{i}")]))
        response = await call.read()
        assert isinstance(response, profile_store_pb2.IngestMetricsResponse)
        rejected, stored = response.acks
        assert (rejected.task_id, rejected.status.code) == (f"bad{i}", code), case
        assert named_field(rejected.status) == {field}, case
        assert field in rejected.status.message, case
        assert (stored.status.code, stored.duplicate) == (0, False), case
    await call.done_writing()
    reply = await stub.GetProfile(profile_store_pb2.GetProfileRequest(key=KEY))
    assert reply.profile.count == len(BAD)


async def test_quantiles_within_the_sketch_error_and_resends_not_counted(stub: Stub) -> None:
    n = 3000
    rng = random.Random(7)
    nanos = [int(rng.lognormvariate(math.log(0.2), 0.6) * 1e9) for _ in range(n)]
    metrics = [metric(f"t{i}", ns, tenant=f"tenant{i % 3}") for i, ns in enumerate(nanos)]
    call = stub.IngestMetrics()
    for start in range(0, n, 1000):
        await call.write(profile_store_pb2.IngestMetricsRequest(metrics=metrics[start : start + 1000]))
        response = await call.read()
        assert isinstance(response, profile_store_pb2.IngestMetricsResponse)
        assert all(a.status.code == 0 and not a.duplicate for a in response.acks)
    profile = (await stub.GetProfile(profile_store_pb2.GetProfileRequest(key=KEY))).profile
    exact = sorted(ns / 1e9 for ns in nanos)
    assert profile.count == n
    assert profile.mean_seconds == pytest.approx(sum(exact) / n, rel=1e-9)
    for q, got in ((0.5, profile.p50_seconds), (0.95, profile.p95_seconds), (0.99, profile.p99_seconds)):
        want = exact[math.floor(q * (n - 1))]  # the sketch's rank: q * (n - 1), lower
        assert abs(got - want) <= RELATIVE_ACCURACY * want, (q, got, want)
    usage_before = (await stub.ListTenantScores(profile_store_pb2.ListTenantScoresRequest())).scores
    # Resend 990 stored metrics (one twice in the same request) beside 5 new ones.
    resent = [*metrics[:990], metrics[0], *(metric(f"new{i}") for i in range(5))]
    await call.write(profile_store_pb2.IngestMetricsRequest(metrics=resent))
    response = await call.read()
    assert isinstance(response, profile_store_pb2.IngestMetricsResponse)
    assert [a.duplicate for a in response.acks] == [True] * 991 + [False] * 5
    assert all(a.status.code == 0 for a in response.acks)
    await call.done_writing()
    profile = (await stub.GetProfile(profile_store_pb2.GetProfileRequest(key=KEY))).profile
    assert profile.count == n + 5
    usage_after = {
        s.tenant: s.decayed_usage
        for s in (await stub.ListTenantScores(profile_store_pb2.ListTenantScoresRequest())).scores
    }
    for before in usage_before:  # only the 5 new ones (tenant acme) were charged
        assert usage_after[before.tenant] == pytest.approx(before.decayed_usage, rel=1e-3)


async def test_pipelined_and_concurrent_requests_are_acked_in_order_and_counted_once(stub: Stub) -> None:
    # Requests written without waiting for acks share transactions (group commit); each
    # still gets its own response, in order, and a metric resent while its first copy is
    # in flight is a duplicate.
    first, second = stub.IngestMetrics(), stub.IngestMetrics()
    plan: dict[Any, list[list[types_pb2.ResultMetrics]]] = {
        first: [[metric(f"a{i}-{j}") for j in range(20)] for i in range(12)],
        second: [[metric(f"b{i}-{j}") for j in range(7)] for i in range(9)],
    }
    plan[first][5].append(metric("a1-3"))  # resent four requests later
    plan[second][2].insert(0, metric("a0-0"))  # another stream's metric
    spoiled = metric("bad")
    spoiled.gpu_utilization = 2.0
    plan[first][7].insert(3, spoiled)
    for call, requests in plan.items():
        for request in requests:
            await call.write(profile_store_pb2.IngestMetricsRequest(metrics=request))
        await call.done_writing()
    acks: list[profile_store_pb2.MetricAck] = []
    for call, requests in plan.items():
        for request in requests:
            response = await call.read()
            assert isinstance(response, profile_store_pb2.IngestMetricsResponse)
            assert [a.task_id for a in response.acks] == [m.task_id for m in request]
            acks.extend(response.acks)
        assert await call.read() == grpc.aio.EOF
    assert [(a.task_id, a.status.code) for a in acks if a.status.code] == [("bad", 3)]
    assert sorted(a.task_id for a in acks if a.duplicate) == ["a0-0", "a1-3"]
    # In one stream the resend is the duplicate; across streams either copy may commit first.
    assert [a.duplicate for a in acks if a.task_id == "a1-3"] == [False, True]
    assert sorted(a.duplicate for a in acks if a.task_id == "a0-0") == [False, True]
    profile = (await stub.GetProfile(profile_store_pb2.GetProfileRequest(key=KEY))).profile
    assert profile.count == 12 * 20 + 9 * 7
