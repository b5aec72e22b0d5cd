"""Tenant shares from a (fake) classifier's WatchTenants stream into the real ProfileStoreApp."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from common.channels import authed_channel
from common.tokens import sign_assignment
from services.profile_store.app import ProfileStoreApp
from services.profile_store.config import ProfileStoreConfig
from services.profile_store.tenants import apply_update
from switchyard.v1 import (
    classifier_pb2,
    classifier_pb2_grpc,
    profile_store_pb2,
    profile_store_pb2_grpc,
    types_pb2,
)
from tests.helpers import assert_eventually, free_port

TOKEN = "tenant-follow-test-token"
LIVENESS_S = 20.0


def tenant(name: str, share: float) -> types_pb2.Tenant:
    return types_pb2.Tenant(name=name, share=share)


class FakeClassifier(classifier_pb2_grpc.ClassifierServiceServicer):
    """WatchTenants only: the first `fail_first` calls are UNAVAILABLE, then a snapshot and
    whatever the test puts on `updates`."""

    def __init__(self, snapshot: list[types_pb2.Tenant], fail_first: int = 0) -> None:
        self.snapshot = snapshot
        self.fail_first = fail_first
        self.calls = 0
        self.authorization: list[str] = []
        self.updates: asyncio.Queue[classifier_pb2.WatchTenantsResponse] = asyncio.Queue()

    async def WatchTenants(
        self, request: classifier_pb2.WatchTenantsRequest, context: Any
    ) -> AsyncIterator[classifier_pb2.WatchTenantsResponse]:
        self.calls += 1
        self.authorization += [v for k, v in context.invocation_metadata() if k == "authorization"]
        if self.calls <= self.fail_first:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "registry warming up")
        yield classifier_pb2.WatchTenantsResponse(tenants=self.snapshot, snapshot=True)
        while True:
            yield await self.updates.get()


async def serve(fake: FakeClassifier, port: int = 0) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    classifier_pb2_grpc.add_ClassifierServiceServicer_to_server(fake, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server, bound


async def start_app(pg_url: str, classifier_address: str) -> ProfileStoreApp:
    config = ProfileStoreConfig(
        port=0, database_url=pg_url, internal_token=TOKEN, watch_coalesce_s=0.2,
        classifier_address=classifier_address,
    )  # fmt: skip
    app = ProfileStoreApp(config)
    await app.start()
    return app


async def read_scores(call: Any) -> profile_store_pb2.WatchTenantScoresResponse:
    message = await call.read()
    assert isinstance(message, profile_store_pb2.WatchTenantScoresResponse), message
    return message


def metric(task_id: str, tenant_name: str) -> types_pb2.ResultMetrics:
    m = types_pb2.ResultMetrics(
        task_id=task_id, attempt=1, worker_id="w", device_model="cpu", category="inference",
        tenant=tenant_name, outcome=types_pb2.OUTCOME_SUCCEEDED,
        assignment_token=sign_assignment(TOKEN, task_id, 1, "w"),
    )  # fmt: skip
    m.execution_time.FromSeconds(1)
    return m


def test_apply_update() -> None:
    shares = apply_update({}, [tenant("a", 3.0), tenant("b", 0.0)], [], snapshot=True)
    assert shares == {"a": 3.0, "b": 1.0}  # an unset share counts as 1.0
    shares = apply_update(shares, [tenant("c", float("nan"))], ["a"], snapshot=False)
    assert shares == {"b": 1.0, "c": 1.0}
    assert apply_update(shares, [tenant("z", 2.0)], [], snapshot=True) == {"z": 2.0}


async def test_shares_follow_the_registry_and_scores_are_republished(pg_url: str) -> None:
    fake = FakeClassifier([tenant("a", 3.0), tenant("b", 1.0)], fail_first=1)  # type: ignore[abstract]
    server, port = await serve(fake)
    app = await start_app(pg_url, f"127.0.0.1:{port}")
    try:
        assert app.server is not None and app.tenants is not None
        async with authed_channel(f"127.0.0.1:{app.server.port}", TOKEN) as channel:
            stub = profile_store_pb2_grpc.ProfileStoreServiceStub(channel)
            call = stub.IngestMetrics()
            await call.write(
                profile_store_pb2.IngestMetricsRequest(metrics=[metric("t1", "a"), metric("t2", "b")])
            )
            await call.read()
            await call.done_writing()
            # The first call was refused: the follower retried and got the snapshot.
            await assert_eventually(
                lambda: app.tenants is not None and app.tenants.shares == {"a": 3.0, "b": 1.0}
            )
            assert fake.calls >= 2 and set(fake.authorization) == {f"Bearer {TOKEN}"}
            scores = {
                s.tenant: s
                for s in (await stub.ListTenantScores(profile_store_pb2.ListTenantScoresRequest())).scores
            }
            # Equal usage (1 s each): U = 0.5; a holds 3/4 of the shares, b 1/4.
            assert scores["a"].share == 3.0 and scores["a"].usage_score == pytest.approx(0.5 / 0.75)
            assert scores["b"].usage_score == pytest.approx(2.0)
            watch = stub.WatchTenantScores(profile_store_pb2.WatchTenantScoresRequest(), timeout=LIVENESS_S)
            snapshot = await read_scores(watch)
            assert snapshot.snapshot
            # A change in the registry: b's share rises to 3, so both are at U/S = 1.
            await fake.updates.put(classifier_pb2.WatchTenantsResponse(tenants=[tenant("b", 3.0)]))
            update = await read_scores(watch)
            assert not update.snapshot
            by_tenant = {s.tenant: s for s in update.scores}
            assert by_tenant["b"].share == 3.0
            assert by_tenant["a"].usage_score == pytest.approx(1.0) == by_tenant["b"].usage_score
            watch.cancel()
    finally:
        await app.stop()
        await server.stop(None)


async def test_a_classifier_that_is_down_does_not_stop_the_store(pg_url: str) -> None:
    port = free_port()
    app = await start_app(pg_url, f"127.0.0.1:{port}")
    server = None
    try:
        assert app.server is not None and app.tenants is not None
        follower = app.tenants
        await assert_eventually(lambda: follower.reconnects >= 2, timeout=LIVENESS_S)
        assert follower.running and follower.shares == {}
        async with authed_channel(f"127.0.0.1:{app.server.port}", TOKEN) as channel:
            stub = profile_store_pb2_grpc.ProfileStoreServiceStub(channel)
            scores = await stub.ListTenantScores(profile_store_pb2.ListTenantScoresRequest())
            assert list(scores.scores) == []
        # The classifier comes up: the follower connects on its next try.
        late = FakeClassifier([tenant("late", 2.0)])  # type: ignore[abstract]
        server, _ = await serve(late, port)
        await assert_eventually(lambda: follower.shares == {"late": 2.0}, timeout=LIVENESS_S)
        assert follower.connected
    finally:
        await app.stop()
        if server is not None:
            await server.stop(None)
