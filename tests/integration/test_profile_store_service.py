"""The real ProfileStoreApp on port 0 (SQLite and PostgreSQL) behind a real grpc.aio client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from common.channels import authed_channel
from common.tokens import sign_assignment
from services.profile_store.app import ProfileStoreApp
from services.profile_store.config import ProfileStoreConfig
from switchyard.v1 import profile_store_pb2, profile_store_pb2_grpc, types_pb2

TOKEN = "integration-test-internal-token"
LIVENESS_S = 20.0
if TYPE_CHECKING:
    Stub = profile_store_pb2_grpc.ProfileStoreServiceAsyncStub
R = TypeVar("R")


@pytest.fixture
async def app(database_url: str) -> AsyncIterator[ProfileStoreApp]:
    config = ProfileStoreConfig(
        port=0, database_url=database_url, internal_token=TOKEN, watch_coalesce_s=1.0, classifier_address=""
    )
    app = ProfileStoreApp(config)
    await app.start()
    yield app
    await app.stop()


@pytest.fixture
async def address(app: ProfileStoreApp) -> str:
    assert app.server is not None
    return f"127.0.0.1:{app.server.port}"


@pytest.fixture
async def stub(address: str) -> AsyncIterator[Stub]:
    async with authed_channel(address, TOKEN) as channel:
        yield profile_store_pb2_grpc.ProfileStoreServiceStub(channel)


def metric(task_id: str, *, model: str = "resnet", attempt: int = 1, token: str | None = None,
           tenant: str = "acme", millis: int = 250) -> types_pb2.ResultMetrics:  # fmt: skip
    m = types_pb2.ResultMetrics(
        task_id=task_id, attempt=attempt, worker_id="gpu-0", device_model="h100",
        model=types_pb2.ModelRef(name=model, version="1"), precision=types_pb2.PRECISION_BF16,
        batch_size=16, category="inference", tenant=tenant, outcome=types_pb2.OUTCOME_SUCCEEDED,
        items_per_second=64.0, gpu_power_watts=300.0,
    )  # fmt: skip
    m.execution_time.FromMilliseconds(millis)
    m.assignment_token = token if token is not None else sign_assignment(TOKEN, task_id, attempt, "gpu-0")
    return m


async def read(call: Any, kind: type[R]) -> R:
    """The next message of a stream, which must be there."""
    message = await call.read()
    assert isinstance(message, kind), message
    return message


def key(model: str = "resnet") -> types_pb2.ProfileKey:
    return types_pb2.ProfileKey(
        device_model="h100", model=types_pb2.ModelRef(name=model, version="1"),
        precision=types_pb2.PRECISION_BF16, batch_bucket=16, category="inference",
    )  # fmt: skip


def detail(status: status_pb2.Status, kind: type) -> object:
    for holder in status.details:
        message = kind()
        if holder.Unpack(message):
            return message
    raise AssertionError(f"no {kind.__name__} in {status}")


async def ingest(stub: Stub, *metrics: types_pb2.ResultMetrics) -> list[profile_store_pb2.MetricAck]:
    call = stub.IngestMetrics()
    await call.write(profile_store_pb2.IngestMetricsRequest(metrics=list(metrics)))
    response = await read(call, profile_store_pb2.IngestMetricsResponse)
    await call.done_writing()
    return list(response.acks)


async def test_health_is_serving(address: str) -> None:
    async with authed_channel(address, None) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "switchyard.v1.ProfileStoreService"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_ingest_acks_each_item_and_the_stream_goes_on(
    stub: Stub,
) -> None:
    bad = metric("t2")
    bad.ClearField("execution_time")
    bad.device_model = ""
    call = stub.IngestMetrics()
    await call.write(profile_store_pb2.IngestMetricsRequest(metrics=[metric("t1"), bad, metric("t3")]))
    first = await read(call, profile_store_pb2.IngestMetricsResponse)
    assert [(a.task_id, a.status.code, a.duplicate) for a in first.acks] == [
        ("t1", 0, False), ("t2", 3, False), ("t3", 0, False)
    ]  # fmt: skip
    violations = detail(first.acks[1].status, error_details_pb2.BadRequest)
    assert isinstance(violations, error_details_pb2.BadRequest)
    assert {v.field for v in violations.field_violations} == {"device_model", "execution_time"}
    # The same stream carries on: a resend is a duplicate, a new metric is stored.
    await call.write(profile_store_pb2.IngestMetricsRequest(metrics=[metric("t1"), metric("t4")]))
    second = await read(call, profile_store_pb2.IngestMetricsResponse)
    assert [(a.task_id, a.status.code, a.duplicate) for a in second.acks] == [
        ("t1", 0, True),
        ("t4", 0, False),
    ]
    await call.done_writing()
    assert await call.read() == grpc.aio.EOF
    reply = await stub.GetProfile(profile_store_pb2.GetProfileRequest(key=key()))
    assert reply.profile.count == 3
    assert reply.profile.mean_seconds == pytest.approx(0.25)
    assert reply.profile.items_per_second == pytest.approx(64.0)


async def test_wrong_assignment_token_is_permission_denied(
    stub: Stub,
) -> None:
    forged = sign_assignment(TOKEN, "t1", 1, "another-worker")
    (ack,) = await ingest(stub, metric("t1", token=forged))
    assert ack.status.code == 7
    info = detail(ack.status, error_details_pb2.ErrorInfo)
    assert isinstance(info, error_details_pb2.ErrorInfo) and info.reason == "BAD_ASSIGNMENT_TOKEN"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetProfile(profile_store_pb2.GetProfileRequest(key=key()))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_no_bearer_token_is_unauthenticated(address: str) -> None:
    async with authed_channel(address, None) as channel:
        anonymous = profile_store_pb2_grpc.ProfileStoreServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await anonymous.ListTenantScores(profile_store_pb2.ListTenantScoresRequest())
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        call = anonymous.IngestMetrics()
        await call.write(profile_store_pb2.IngestMetricsRequest(metrics=[metric("t1")]))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call.read()
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    async with authed_channel(address, "not-the-internal-token") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await profile_store_pb2_grpc.ProfileStoreServiceStub(channel).GetProfile(
                profile_store_pb2.GetProfileRequest(key=key())
            )
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_get_profile_errors(stub: Stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetProfile(profile_store_pb2.GetProfileRequest(key=key("never-ran")))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    incomplete = key()
    incomplete.device_model = ""
    incomplete.batch_bucket = 12
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetProfile(profile_store_pb2.GetProfileRequest(key=incomplete))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(caught.value)
    assert status is not None
    bad = detail(status, error_details_pb2.BadRequest)
    assert isinstance(bad, error_details_pb2.BadRequest)
    assert {v.field for v in bad.field_violations} == {"key.device_model", "key.batch_bucket"}


async def test_list_profiles_pages_and_tenant_scores(
    stub: Stub,
) -> None:
    acks = await ingest(stub, *(metric(f"t{i}", model=f"m{i}", tenant=f"tenant{i % 2}") for i in range(5)))
    assert all(a.status.code == 0 for a in acks)
    names: list[str] = []
    token = ""
    while True:
        page = await stub.ListProfiles(profile_store_pb2.ListProfilesRequest(page_size=2, page_token=token))
        names.extend(p.key.model.name for p in page.profiles)
        token = page.next_page_token
        if not token:
            break
    assert names == ["m0", "m1", "m2", "m3", "m4"]
    only = await stub.ListProfiles(profile_store_pb2.ListProfilesRequest(model_name="m3"))
    assert [p.key.model.name for p in only.profiles] == ["m3"]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListProfiles(profile_store_pb2.ListProfilesRequest(page_token="garbage!"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    scores = (await stub.ListTenantScores(profile_store_pb2.ListTenantScoresRequest())).scores
    by_tenant = {s.tenant: s for s in scores}
    assert by_tenant["tenant0"].decayed_usage == pytest.approx(0.75, rel=1e-3)
    assert by_tenant["tenant1"].decayed_usage == pytest.approx(0.5, rel=1e-3)
    assert by_tenant["tenant0"].usage_score == pytest.approx(1.2, rel=1e-3)
    assert by_tenant["tenant0"].fair_share_factor == pytest.approx(2**-1.2, rel=1e-3)


async def test_watch_profiles_snapshot_then_coalesced_changes(
    stub: Stub,
) -> None:
    await ingest(stub, metric("before"))
    watch = stub.WatchProfiles(profile_store_pb2.WatchProfilesRequest(), timeout=LIVENESS_S)
    snapshot = await read(watch, profile_store_pb2.WatchProfilesResponse)
    assert snapshot.snapshot
    assert [(p.key.model.name, p.count) for p in snapshot.profiles] == [("resnet", 1)]
    # Two requests within one coalescing window (1 s) → one message with both profiles.
    await ingest(stub, metric("a1"), metric("a2"))
    await ingest(stub, metric("b1", model="bert"))
    update = await read(watch, profile_store_pb2.WatchProfilesResponse)
    assert not update.snapshot
    assert sorted((p.key.model.name, p.count) for p in update.profiles) == [("bert", 1), ("resnet", 3)]
    watch.cancel()


async def test_watch_tenant_scores(stub: Stub) -> None:
    watch = stub.WatchTenantScores(profile_store_pb2.WatchTenantScoresRequest(), timeout=LIVENESS_S)
    snapshot = await read(watch, profile_store_pb2.WatchTenantScoresResponse)
    assert snapshot.snapshot and list(snapshot.scores) == []
    await ingest(stub, metric("x", tenant="a"), metric("y", tenant="b", millis=750))
    update = await read(watch, profile_store_pb2.WatchTenantScoresResponse)
    assert not update.snapshot
    by_tenant = {s.tenant: s for s in update.scores}
    assert set(by_tenant) == {"a", "b"}
    assert by_tenant["b"].fair_share_factor < by_tenant["a"].fair_share_factor < 1.0
    watch.cancel()
