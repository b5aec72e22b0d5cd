"""The worker's metrics shipper against an in-process fake of ProfileStoreService.IngestMetrics."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from google.rpc import code_pb2, status_pb2

from services.worker.shipper import METRICS_DROPPED, MetricsShipper, encode_request
from switchyard.v1 import profile_store_pb2, profile_store_pb2_grpc, types_pb2
from tests.helpers import assert_eventually, free_port

TOKEN = "shipper-test-internal-token-0123456789"


class FakeStore(profile_store_pb2_grpc.ProfileStoreServiceServicer):
    def __init__(self, *, reject: set[str] | None = None, hold: bool = False) -> None:
        self.received: Counter[str] = Counter()
        self.reject = reject or set()
        self.hold = hold
        self.tokens: list[str] = []

    async def IngestMetrics(
        self, request_iterator: AsyncIterator[profile_store_pb2.IngestMetricsRequest], context: Any
    ) -> AsyncIterator[profile_store_pb2.IngestMetricsResponse]:
        self.tokens.append(dict(context.invocation_metadata()).get("authorization", ""))
        async for request in request_iterator:
            self.received.update(m.task_id for m in request.metrics)
            if self.hold:
                continue
            acks = [
                profile_store_pb2.MetricAck(
                    task_id=m.task_id,
                    attempt=m.attempt,
                    status=status_pb2.Status(
                        code=code_pb2.INVALID_ARGUMENT if m.task_id in self.reject else code_pb2.OK,
                        message="bad token" if m.task_id in self.reject else "",
                    ),
                )
                for m in request.metrics
            ]
            yield profile_store_pb2.IngestMetricsResponse(acks=acks)


async def serve(store: FakeStore, port: int) -> grpc.aio.Server:
    server = grpc.aio.server()
    profile_store_pb2_grpc.add_ProfileStoreServiceServicer_to_server(store, server)
    assert server.add_insecure_port(f"127.0.0.1:{port}") == port
    await server.start()
    return server


def metric(task_id: str) -> types_pb2.ResultMetrics:
    return types_pb2.ResultMetrics(task_id=task_id, attempt=1, outcome=types_pb2.OUTCOME_SUCCEEDED)


@pytest.fixture
def port() -> Iterator[int]:
    yield free_port()


async def test_full_buffer_drops_the_oldest_and_counts() -> None:
    shipper = MetricsShipper(address="127.0.0.1:1", token=TOKEN, capacity=3)
    before = METRICS_DROPPED._value.get()
    for i in range(5):
        shipper.add(metric(f"t{i}"))
    shipper.add(metric("t4"))  # the same (task, attempt) again replaces, it does not grow
    assert shipper.pending == 3 and shipper.dropped == 2
    assert METRICS_DROPPED._value.get() - before == 2


async def test_rejected_metrics_are_not_resent(port: int) -> None:
    store = FakeStore(reject={"bad"})  # type: ignore[abstract]
    server = await serve(store, port)
    shipper = MetricsShipper(address=f"127.0.0.1:{port}", token=TOKEN, capacity=100)
    shipper.start()
    try:
        shipper.add(metric("good"))
        shipper.add(metric("bad"))
        await assert_eventually(lambda: shipper.pending == 0, msg="all acknowledged")
        assert (shipper.stored, shipper.rejected) == (1, 1)
        await server.stop(0)
        server = await serve(store, port)
        shipper.add(metric("later"))
        await assert_eventually(lambda: store.received["later"] == 1, msg="sent after reconnect")
        assert store.received["bad"] == 1 and store.received["good"] == 1
        assert store.tokens[0] == f"Bearer {TOKEN}"
    finally:
        await shipper.stop()
        await server.stop(0)


async def test_unacknowledged_metrics_are_resent_after_reconnect(port: int) -> None:
    silent = FakeStore(hold=True)  # type: ignore[abstract]
    server = await serve(silent, port)
    shipper = MetricsShipper(address=f"127.0.0.1:{port}", token=TOKEN, capacity=100)
    shipper.start()
    try:
        shipper.add(metric("m1"))
        await assert_eventually(lambda: silent.received["m1"] == 1, msg="sent once")
        assert shipper.pending == 1
        await server.stop(0)
        store = FakeStore()  # type: ignore[abstract]
        server = await serve(store, port)
        await assert_eventually(lambda: shipper.pending == 0, msg="resent and acknowledged")
        assert store.received["m1"] == 1
    finally:
        await shipper.stop()
        await server.stop(0)


@pytest.mark.parametrize("sizes", [[], [0], [1, 200], [20_000, 3, 70_000]])
def test_a_request_of_serialized_metrics_reads_as_the_request(sizes: list[int]) -> None:
    metrics = [types_pb2.ResultMetrics(task_id=f"t{i}", category="c" * size) for i, size in enumerate(sizes)]
    encoded = encode_request([m.SerializeToString() for m in metrics])
    assert profile_store_pb2.IngestMetricsRequest.FromString(
        encoded
    ) == profile_store_pb2.IngestMetricsRequest(metrics=metrics)
