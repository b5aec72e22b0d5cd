"""Passing the scheduler's errors through to our caller, unchanged, in one place.

The scheduler's `google.rpc.Status` (code, message, details such as BadRequest or
ResourceInfo) travels in the `grpc-status-details-bin` trailer; re-aborting with the same
code, message and trailer gives the client exactly what the scheduler said.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, NoReturn

import grpc

from common.errors import Unavailable

STATUS_DETAILS_KEY = "grpc-status-details-bin"
FORWARDED_TRAILERS = (STATUS_DETAILS_KEY,)


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
