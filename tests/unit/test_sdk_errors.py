"""SwitchyardError decoding from a real grpc.aio server that aborts with google.rpc.Status."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from switchyard import Client, FieldViolation, QuotaViolation, SwitchyardError, inference
from switchyard.v1 import classifier_pb2, classifier_pb2_grpc


def _packed(*details: Any) -> list[any_pb2.Any]:
    out = []
    for detail in details:
        holder = any_pb2.Any()
        holder.Pack(detail)
        out.append(holder)
    return out


BAD_REQUEST = status_pb2.Status(
    code=code_pb2.INVALID_ARGUMENT,
    message="invalid request: tasks[0].batch_size",
    details=_packed(
        error_details_pb2.ErrorInfo(
            reason="INVALID_ARGUMENT", domain="switchyard.dev", metadata={"request_id": "req-123"}
        ),
        error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field="tasks[0].batch_size", description="must not be negative"
                ),
                error_details_pb2.BadRequest.FieldViolation(field="tasks[0].category", description="unknown"),
            ]
        ),
    ),
)
QUOTA = status_pb2.Status(
    code=code_pb2.RESOURCE_EXHAUSTED,
    message="too many queued tasks",
    details=_packed(
        error_details_pb2.ErrorInfo(reason="QUEUED_QUOTA", domain="switchyard.dev"),
        error_details_pb2.QuotaFailure(
            violations=[error_details_pb2.QuotaFailure.Violation(subject="acme", description="1000 queued")]
        ),
        error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=2, nanos=500_000_000)),
    ),
)
NOT_FOUND = status_pb2.Status(
    code=code_pb2.NOT_FOUND,
    message="job 'job_x' not found",
    details=_packed(
        error_details_pb2.ErrorInfo(reason="JOB_NOT_FOUND"),
        error_details_pb2.ResourceInfo(resource_type="job", resource_name="job_x"),
    ),
)


class AbortingClassifier(classifier_pb2_grpc.ClassifierServiceServicer):
    """Answers each RPC with a canned rich error; remembers the metadata it saw."""

    def __init__(self) -> None:
        self.seen_metadata: list[tuple[str, str]] = []

    async def _abort(self, context: grpc.aio.ServicerContext[Any, Any], status: status_pb2.Status) -> None:
        self.seen_metadata = [(k, v) for k, v in context.invocation_metadata() or () if isinstance(v, str)]
        converted = rpc_status.to_status(status)
        await context.abort(converted.code, converted.details, converted.trailing_metadata)

    async def SubmitTasks(self, request: Any, context: Any) -> classifier_pb2.SubmitTasksResponse:
        await self._abort(context, BAD_REQUEST)
        raise AssertionError("unreachable")

    async def CancelTasks(self, request: Any, context: Any) -> classifier_pb2.CancelTasksResponse:
        await self._abort(context, QUOTA)
        raise AssertionError("unreachable")

    async def GetJob(self, request: Any, context: Any) -> classifier_pb2.GetJobResponse:
        await self._abort(context, NOT_FOUND)
        raise AssertionError("unreachable")

    async def WatchJob(self, request: Any, context: Any) -> AsyncIterator[classifier_pb2.WatchJobResponse]:
        yield classifier_pb2.WatchJobResponse()
        await self._abort(context, NOT_FOUND)


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, AbortingClassifier]]:
    servicer = AbortingClassifier()  # type: ignore[abstract]
    srv = grpc.aio.server()
    classifier_pb2_grpc.add_ClassifierServiceServicer_to_server(servicer, srv)
    port = srv.add_insecure_port("127.0.0.1:0")
    await srv.start()
    yield f"127.0.0.1:{port}", servicer
    await srv.stop(None)


async def test_bad_request_is_decoded(server: tuple[str, AbortingClassifier]) -> None:
    address, servicer = server
    async with Client(address, "sy_secret_token") as client:
        with pytest.raises(SwitchyardError) as caught:
            await client.submit([inference("mlp", batch_size=-1)])
    err = caught.value
    assert err.code == "INVALID_ARGUMENT"
    assert err.message == "invalid request: tasks[0].batch_size"
    assert err.reason == "INVALID_ARGUMENT"
    assert err.domain == "switchyard.dev"
    assert err.request_id == "req-123"
    assert err.field_violations == [
        FieldViolation("tasks[0].batch_size", "must not be negative"),
        FieldViolation("tasks[0].category", "unknown"),
    ]
    assert not err.retryable
    assert ("authorization", "Bearer sy_secret_token") in servicer.seen_metadata


async def test_quota_and_retry_info(server: tuple[str, AbortingClassifier]) -> None:
    async with Client(server[0], "t") as client:
        with pytest.raises(SwitchyardError) as caught:
            await client.cancel(job_id="job_x")
    err = caught.value
    assert (err.code, err.reason) == ("RESOURCE_EXHAUSTED", "QUEUED_QUOTA")
    assert err.quota_violations == [QuotaViolation("acme", "1000 queued")]
    assert err.retry_delay == pytest.approx(2.5)
    assert err.retryable
    assert str(err) == "RESOURCE_EXHAUSTED: too many queued tasks [QUEUED_QUOTA]"


async def test_resource_info(server: tuple[str, AbortingClassifier]) -> None:
    async with Client(server[0], "t") as client:
        with pytest.raises(SwitchyardError) as caught:
            await client.get_job("job_x")
    assert caught.value.code == "NOT_FOUND"
    assert caught.value.resource == ("job", "job_x")


async def test_stream_errors_are_wrapped(server: tuple[str, AbortingClassifier]) -> None:
    async with Client(server[0], "t") as client:
        with pytest.raises(SwitchyardError) as caught:
            async for _job in client.watch_job("job_x"):
                pass
    assert caught.value.reason == "JOB_NOT_FOUND"


async def test_plain_status_without_details(server: tuple[str, AbortingClassifier]) -> None:
    async with Client(server[0], "t") as client:
        with pytest.raises(SwitchyardError) as caught:
            await client.explain("task_1")  # not implemented by the fake
    assert caught.value.code == "UNIMPLEMENTED"
    assert caught.value.field_violations == []


async def test_unreachable_server_is_a_switchyard_error() -> None:
    from tests.helpers import free_port

    async with Client(f"127.0.0.1:{free_port()}", "t", timeout=2.0) as client:
        with pytest.raises(SwitchyardError) as caught:
            await client.get_tasks(["task_1"])
    assert caught.value.code == "UNAVAILABLE"
    assert caught.value.retryable
