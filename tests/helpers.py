"""Helpers shared by the test layers."""

from __future__ import annotations

import asyncio
import inspect
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def assert_eventually(
    check: Callable[[], Any | Awaitable[Any]], *, timeout: float = 20.0, interval: float = 0.05, msg: str = ""
) -> Any:
    """Retry `check` until it returns a truthy value without raising AssertionError."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = check()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value
            last = AssertionError(f"condition still false: {msg}")
        except AssertionError as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s: {msg}") from last
        await asyncio.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
