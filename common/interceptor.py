"""The one server interceptor: request ids, authentication, metrics, error translation.

Every RPC of every service goes through it. Domain errors (`common.errors`) become a
status code, their public message and `google.rpc.Status` details; anything unknown is
logged with the request id and answered INTERNAL without internal detail.
"""

from __future__ import annotations

import inspect
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from common import errors
from common.auth import Authenticator, bearer_token, principal_var
from common.logs import request_id_var
from common.telemetry import RPC_SECONDS, RPC_TOTAL

log = logging.getLogger(__name__)

OPEN_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)
ERROR_DOMAIN = "switchyard.dev"


def status_for(exc: errors.SwitchyardError, request_id: str) -> status_pb2.Status:
    """Translate a domain error into a google.rpc.Status with standard details."""
    code = getattr(code_pb2, exc.code_name, code_pb2.UNKNOWN)
    details: list[Any] = [
        error_details_pb2.ErrorInfo(
            reason=exc.reason, domain=ERROR_DOMAIN, metadata={**exc.metadata, "request_id": request_id}
        )
    ]
    if isinstance(exc, errors.InvalidArgument):
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                    for v in exc.violations
                ]
            )
        )
    elif isinstance(exc, errors.ResourceExhausted) and exc.violations:
        details.append(
            error_details_pb2.QuotaFailure(
                violations=[
                    error_details_pb2.QuotaFailure.Violation(subject=v.subject, description=v.description)
                    for v in exc.violations
                ]
            )
        )
    elif isinstance(exc, errors.NotFound):
        details.append(
            error_details_pb2.ResourceInfo(resource_type=exc.resource_type, resource_name=exc.resource_name)
        )
    elif isinstance(exc, errors.Unavailable):
        delay = duration_pb2.Duration()
        delay.FromMilliseconds(int(exc.retry_after_s * 1000))
        details.append(error_details_pb2.RetryInfo(retry_delay=delay))
    packed = []
    for detail in details:
        holder = any_pb2.Any()
        holder.Pack(detail)
        packed.append(holder)
    return status_pb2.Status(code=code, message=exc.message, details=packed)


async def _abort(context: grpc.aio.ServicerContext[Any, Any], status: status_pb2.Status) -> None:
    converted = rpc_status.to_status(status)
    await context.abort(converted.code, converted.details, converted.trailing_metadata)


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    def __init__(
        self,
        service: str,
        authenticator: Authenticator | None,
        open_prefixes: tuple[str, ...] = OPEN_PREFIXES,
    ) -> None:
        self.service = service
        self.authenticator = authenticator
        self.open_prefixes = open_prefixes

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        metadata = tuple(handler_call_details.invocation_metadata or ())
        call = _Call(self, method, metadata)
        decode = _tolerant(handler.request_deserializer)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                call.wrap_unary(handler.unary_unary),
                decode,
                handler.response_serializer,
            )
        if handler.unary_stream:
            # A streaming handler is either an async generator or a coroutine that writes
            # with context.write (as the health service's Watch does).
            streaming = handler.unary_stream
            wrapped = call.wrap_stream if inspect.isasyncgenfunction(streaming) else call.wrap_unary
            return grpc.unary_stream_rpc_method_handler(
                wrapped(streaming),  # type: ignore[arg-type]
                decode,
                handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                call.wrap_unary(handler.stream_unary),
                handler.request_deserializer,
                handler.response_serializer,
            )
        bidi: Any = handler.stream_stream
        wrapped = call.wrap_stream if inspect.isasyncgenfunction(bidi) else call.wrap_unary
        return grpc.stream_stream_rpc_method_handler(
            wrapped(bidi),
            handler.request_deserializer,
            handler.response_serializer,
        )


class Undecodable:
    """What a request body the deserializer rejects becomes: the handler wrapper answers it
    INVALID_ARGUMENT (after authentication), instead of grpc's UNKNOWN with parser internals."""

    def __init__(self, type_name: str, error: DecodeError) -> None:
        why = "it nests too deeply" if "Depth" in str(error) else "its wire format is corrupt"
        self.description = f"not a valid {type_name}: {why}"

    def refusal(self) -> errors.InvalidArgument:
        return errors.InvalidArgument(
            [errors.FieldViolation("request", self.description)], "the request cannot be decoded"
        )


def _tolerant(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserialize is None:
        return None
    descriptor = getattr(getattr(deserialize, "__self__", None), "DESCRIPTOR", None)
    name = descriptor.full_name if descriptor is not None else "request"

    def decode(data: bytes) -> Any:
        try:
            return deserialize(data)
        except DecodeError as exc:
            return Undecodable(name, exc)

    return decode


class _Call:
    """Per-call state shared by the unary and streaming wrappers."""

    def __init__(self, owner: ServiceInterceptor, method: str, metadata: tuple[Any, ...]) -> None:
        self.owner = owner
        self.method = method
        self.metadata = metadata
        self.short = method.rsplit("/", 1)[-1]

    def _request_id(self) -> str:
        for key, value in self.metadata:
            if key == "x-request-id" and isinstance(value, str) and 0 < len(value) <= 128:
                return value
        return uuid.uuid4().hex

    async def _enter(self, context: grpc.aio.ServicerContext[Any, Any]) -> str:
        rid = self._request_id()
        request_id_var.set(rid)
        principal_var.set(None)
        await context.send_initial_metadata((("x-request-id", rid),))
        if self.owner.authenticator is None or self.method.startswith(self.owner.open_prefixes):
            return rid
        token = bearer_token(self.metadata)
        if token is None:
            raise errors.Unauthenticated("missing `authorization: Bearer <token>` metadata")
        principal = await self.owner.authenticator.authenticate(token)
        if principal is None:
            raise errors.Unauthenticated("invalid or revoked bearer token")
        principal_var.set(principal)
        return rid

    async def _fail(self, exc: BaseException, context: grpc.aio.ServicerContext[Any, Any], rid: str) -> str:
        if isinstance(exc, errors.SwitchyardError):
            status = status_for(exc, rid)
            log.info("rpc refused", extra={"method": self.method, "reason": exc.reason, "error": exc.message})
        else:
            log.error("rpc failed", exc_info=exc, extra={"method": self.method})
            status = status_pb2.Status(code=code_pb2.INTERNAL, message=f"internal error (request id {rid})")
        await _abort(context, status)
        return "UNREACHABLE"

    def _record(self, started: float, code: str) -> None:
        RPC_TOTAL.labels(self.owner.service, self.short, code).inc()
        RPC_SECONDS.labels(self.owner.service, self.short).observe(time.perf_counter() - started)

    def wrap_unary(self, behaviour: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started, rid, code = time.perf_counter(), "", "OK"
            try:
                rid = await self._enter(context)
                if isinstance(request, Undecodable):
                    raise request.refusal()
                return await behaviour(request, context)
            except (errors.SwitchyardError, Exception) as exc:
                if isinstance(exc, grpc.aio.AbortError):
                    code = "ABORTED_BY_HANDLER"
                    raise
                code = getattr(exc, "code_name", "INTERNAL")
                await self._fail(exc, context, rid or uuid.uuid4().hex)
            finally:
                self._record(started, code)

        return unary

    def wrap_stream(self, behaviour: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
        async def stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            started, rid, code = time.perf_counter(), "", "OK"
            try:
                rid = await self._enter(context)
                if isinstance(request, Undecodable):
                    raise request.refusal()
                async for item in behaviour(request, context):
                    yield item
            except (errors.SwitchyardError, Exception) as exc:
                if isinstance(exc, grpc.aio.AbortError):
                    code = "ABORTED_BY_HANDLER"
                    raise
                code = getattr(exc, "code_name", "INTERNAL")
                await self._fail(exc, context, rid or uuid.uuid4().hex)
            finally:
                self._record(started, code)

        return stream
