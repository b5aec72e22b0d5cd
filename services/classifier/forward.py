"""Passing the scheduler's errors, and the answers that need no conversion, through to our
caller unchanged, in one place.

The scheduler's `google.rpc.Status` (code, message, details such as BadRequest or
ResourceInfo) travels in the `grpc-status-details-bin` trailer; re-aborting with the same
code, message and trailer gives the client exactly what the scheduler said.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, NoReturn

import grpc
from google.protobuf import message_factory

from common.errors import Unavailable
from switchyard.v1 import classifier_pb2, scheduler_pb2

STATUS_DETAILS_KEY = "grpc-status-details-bin"
FORWARDED_TRAILERS = (STATUS_DETAILS_KEY,)
SCHEDULER_SERVICE = "switchyard.v1.SchedulerService"
# Our methods that may answer with the scheduler's response bytes (see SchedulerRelay).
RELAYED = frozenset({"GetTasks", "WatchTasks"})


async def reraise(exc: grpc.aio.AioRpcError, context: grpc.aio.ServicerContext[Any, Any]) -> NoReturn:
    """Abort the current RPC with the scheduler's status; UNAVAILABLE when it cannot be reached."""
    trailers = tuple((k, v) for k, v in (exc.trailing_metadata() or ()) if k in FORWARDED_TRAILERS)
    if exc.code() == grpc.StatusCode.UNAVAILABLE and not trailers:
        # A transport failure, not an answer: say so without leaking internal addresses.
        raise Unavailable("the scheduler is unavailable; retry shortly", reason="SCHEDULER_UNAVAILABLE")
    await context.abort(exc.code(), exc.details() or "", trailers)
    raise AssertionError("context.abort returned")  # pragma: no cover


@asynccontextmanager
async def scheduler_errors(context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[None]:
    """`async with scheduler_errors(context): await stub.X(...)` forwards any RPC error."""
    try:
        yield
    except grpc.aio.AioRpcError as exc:
        await reraise(exc, context)


class SchedulerRelay:
    """Scheduler reads whose answers go on to our caller unparsed.

    The scheduler's GetTasks and WatchTasks responses and ours are each one `repeated Task
    tasks = 1`: the same wire format, so their bytes are relayed as they arrive, with no
    parse, copy and serialisation of every task on the way (see `add_classifier_servicer`).
    """

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.get_tasks: grpc.aio.UnaryUnaryMultiCallable[Any, bytes] = channel.unary_unary(
            f"/{SCHEDULER_SERVICE}/GetTasks",
            request_serializer=scheduler_pb2.SchedulerServiceGetTasksRequest.SerializeToString,
        )
        self.watch_tasks: grpc.aio.UnaryStreamMultiCallable[Any, bytes] = channel.unary_stream(
            f"/{SCHEDULER_SERVICE}/WatchTasks",
            request_serializer=scheduler_pb2.SchedulerServiceWatchTasksRequest.SerializeToString,
        )


def add_classifier_servicer(servicer: Any, server: grpc.aio.Server) -> None:
    """The generated `add_ClassifierServiceServicer_to_server`, except that the responses in
    RELAYED may also be bytes already in their wire format (from `SchedulerRelay`)."""
    service = classifier_pb2.DESCRIPTOR.services_by_name["ClassifierService"]
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in service.methods:
        request = message_factory.GetMessageClass(method.input_type)
        response = message_factory.GetMessageClass(method.output_type)
        serialize: Callable[[Any], bytes] = response.SerializeToString
        if method.name in RELAYED:
            serialize = _relayed(serialize)
        handler = (
            grpc.unary_stream_rpc_method_handler
            if method.server_streaming
            else grpc.unary_unary_rpc_method_handler
        )
        handlers[method.name] = handler(
            getattr(servicer, method.name),
            request_deserializer=request.FromString,
            response_serializer=serialize,
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
    server.add_registered_method_handlers(service.full_name, handlers)


def _relayed(serialize: Callable[[Any], bytes]) -> Callable[[Any], bytes]:
    def serialize_or_relay(response: Any) -> bytes:
        return response if isinstance(response, bytes) else serialize(response)

    return serialize_or_relay
