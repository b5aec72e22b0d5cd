"""Requests that cannot be decoded are INVALID_ARGUMENT, not grpc's UNKNOWN.

grpc answers a body its deserializer rejects (corrupt wire format, nesting past protobuf's
depth limit) with UNKNOWN and the parser's internal message. `tolerant(add)` wraps a
generated `add_*_to_server` so the deserializer hands such a body to the handler as an
`Undecodable`, and the handler raises InvalidArgument after authentication, through the
one error translator like every other refusal.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from common.errors import FieldViolation, InvalidArgument

AddFn = Callable[[Any, grpc.aio.Server], None]


class Undecodable:
    def __init__(self, type_name: str, error: DecodeError) -> None:
        why = "it nests too deeply" if "Depth" in str(error) else "its wire format is corrupt"
        self.description = f"not a valid {type_name}: {why}"


def _decoder(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    type_name = getattr(getattr(deserialize, "__self__", None), "DESCRIPTOR", None)
    name = type_name.full_name if type_name is not None else "request"

    def decode(data: bytes) -> Any:
        try:
            return deserialize(data)
        except DecodeError as exc:
            return Undecodable(name, exc)

    return decode


def _refuse(request: Undecodable) -> InvalidArgument:
    return InvalidArgument([FieldViolation("request", request.description)], "the request cannot be decoded")


def _guard_unary(behaviour: Callable[[Any, Any], Awaitable[Any]]) -> Callable[[Any, Any], Awaitable[Any]]:
    async def unary(request: Any, context: Any) -> Any:
        if isinstance(request, Undecodable):
            raise _refuse(request)
        return await behaviour(request, context)

    return unary


def _guard_stream(
    behaviour: Callable[[Any, Any], AsyncIterator[Any]],
) -> Callable[[Any, Any], AsyncIterator[Any]]:
    async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
        if isinstance(request, Undecodable):
            raise _refuse(request)
        async for item in behaviour(request, context):
            yield item

    return stream


def _tolerant_handler(handler: grpc.RpcMethodHandler[Any, Any]) -> grpc.RpcMethodHandler[Any, Any]:
    decode = _decoder(handler.request_deserializer) if handler.request_deserializer else None
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(
            _guard_unary(handler.unary_unary), decode, handler.response_serializer
        )
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            _guard_stream(handler.unary_stream),  # type: ignore[arg-type]
            decode,
            handler.response_serializer,
        )
    return handler  # client-streaming methods keep grpc's own handling


class _Capture:
    """Stands in for the server while the generated function registers its handlers."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self.server = server

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        """Replaced by the tolerant handlers registered below."""

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        tolerant_handlers = {name: _tolerant_handler(h) for name, h in handlers.items()}
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(service, tolerant_handlers),)
        )
        self.server.add_registered_method_handlers(service, tolerant_handlers)


def tolerant(add: AddFn) -> AddFn:
    def add_tolerant(servicer: Any, server: grpc.aio.Server) -> None:
        add(servicer, _Capture(server))  # type: ignore[arg-type]

    return add_tolerant
