"""The one server bootstrap: errors → status and details, INTERNAL without leaks, request
ids, authentication, health, reflection and the metrics endpoint, over real gRPC."""

from __future__ import annotations

import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from common import errors
from common.auth import InternalAuthenticator, current_principal
from common.channels import authed_channel
from common.config import ServerConfig
from common.server import GrpcServer, Registration
from switchyard.v1 import worker_pb2, worker_pb2_grpc

TOKEN = "common-test-internal-token"


class Probe(worker_pb2_grpc.WorkerServiceServicer):
    """DescribeWorker raises whatever the test put in `self.raise_next`."""

    def __init__(self) -> None:
        self.raise_next: BaseException | None = None

    async def DescribeWorker(self, request, context):
        if self.raise_next is not None:
            raise self.raise_next
        reply = worker_pb2.DescribeWorkerResponse()
        reply.worker.id = current_principal().user
        return reply

    async def DrainWorker(self, request, context):
        return worker_pb2.DrainWorkerResponse()


@pytest.fixture
async def served() -> AsyncIterator[tuple[GrpcServer, Probe]]:
    probe = Probe()
    config = ServerConfig(port=0, metrics_port=0, internal_token=TOKEN)
    server = GrpcServer(
        "probe",
        config,
        [
            Registration(
                worker_pb2_grpc.add_WorkerServiceServicer_to_server, probe, "switchyard.v1.WorkerService"
            )
        ],
        InternalAuthenticator(TOKEN),
    )
    await server.start()
    await server.set_serving(True)
    yield server, probe
    await server.stop(0)


async def call(server: GrpcServer, token: str | None = TOKEN):
    async with authed_channel(server.address, token) as channel:
        stub = worker_pb2_grpc.WorkerServiceStub(channel)
        rpc = stub.DescribeWorker(worker_pb2.DescribeWorkerRequest(), metadata=(("x-request-id", "req-123"),))
        return await rpc, await rpc.initial_metadata()


def details(exc: grpc.aio.AioRpcError) -> dict[str, Any]:
    out: dict[str, Any] = {}
    status = rpc_status.from_call(exc)
    assert status is not None
    for any_ in status.details:
        for cls in (
            error_details_pb2.BadRequest,
            error_details_pb2.ErrorInfo,
            error_details_pb2.QuotaFailure,
        ):
            if any_.Is(cls.DESCRIPTOR):
                msg = cls()
                any_.Unpack(msg)
                out[cls.__name__] = msg
    return out


async def test_authenticated_call_carries_the_principal_and_request_id(served):
    server, _ = served
    reply, metadata = await call(server)
    assert reply.worker.id == "service"
    assert ("x-request-id", "req-123") in tuple(metadata)


@pytest.mark.parametrize("token", [None, "not-the-internal-token"])
async def test_missing_or_bad_token_is_unauthenticated(served, token):
    server, _ = served
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(server, token)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_domain_errors_map_to_codes_and_standard_details(served):
    server, probe = served
    probe.raise_next = errors.InvalidArgument(
        [
            errors.FieldViolation("tasks[0].category", "unknown"),
            errors.FieldViolation("tasks[1].batch_size", "< 0"),
        ]
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(server)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    found = details(err.value)
    assert [v.field for v in found["BadRequest"].field_violations] == [
        "tasks[0].category",
        "tasks[1].batch_size",
    ]
    assert found["ErrorInfo"].metadata["request_id"] == "req-123"
    probe.raise_next = errors.ResourceExhausted(
        "over quota", [errors.QuotaViolation("tenant:acme", "queued")]
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(server)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert details(err.value)["QuotaFailure"].violations[0].subject == "tenant:acme"
    probe.raise_next = errors.NotFound("task", "t1")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(server)
    assert (
        err.value.code() == grpc.StatusCode.NOT_FOUND
        and details(err.value)["ErrorInfo"].reason == "TASK_NOT_FOUND"
    )


async def test_unknown_exceptions_are_internal_without_leaking(served):
    server, probe = served
    probe.raise_next = RuntimeError("password=hunter2 at /secret/path")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(server)
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert "hunter2" not in (err.value.details() or "") and "req-123" in (err.value.details() or "")
    probe.raise_next = None
    reply, _ = await call(server)  # the server keeps serving
    assert reply.worker.id == "service"


async def test_health_follows_serving_state_and_stays_open(served):
    server, _ = served
    async with grpc.aio.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service="switchyard.v1.WorkerService")
        assert (await health.Check(request)).status == health_pb2.HealthCheckResponse.SERVING
        await server.set_serving(False)
        assert (await health.Check(request)).status == health_pb2.HealthCheckResponse.NOT_SERVING


async def test_metrics_endpoint_counts_rpcs(served):
    server, _ = served
    await call(server)
    assert server.metrics_port
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    body = urllib.request.urlopen(url, timeout=10).read().decode()
    assert 'switchyard_rpc_total{code="OK",method="DescribeWorker",service="probe"}' in body


async def test_health_watch_streams_through_the_interceptor(served):
    server, _ = served
    async with grpc.aio.insecure_channel(server.address) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
        first = await watch.read()
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        await server.set_serving(False)
        second = await watch.read()
        assert second.status == health_pb2.HealthCheckResponse.NOT_SERVING
        watch.cancel()


async def test_an_undecodable_body_is_invalid_argument_not_unknown(served):
    server, _ = served
    async with authed_channel(server.address, TOKEN) as channel:
        raw: Any = channel.unary_unary("/switchyard.v1.WorkerService/DescribeWorker")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await raw(b"\x0a\xff\xff\xff\xff\x0f")  # a length prefix past the end of the body
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "switchyard.v1.DescribeWorkerRequest" in str(details(err.value)["BadRequest"])
