"""Tenant shares from the classifier's registry (DESIGN §7): a WatchTenants follower.

The stream starts with a snapshot of every tenant and then carries changes and removals.
The follower keeps one stream open, reconnects with capped exponential backoff when the
classifier is down or the stream breaks, and never lets an error end it: until the first
snapshot (and while the classifier is away) the last known shares stay in force.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence

import grpc

from common.channels import authed_channel
from services.profile_store.usage import DEFAULT_SHARE
from switchyard.v1 import classifier_pb2, classifier_pb2_grpc, types_pb2

log = logging.getLogger(__name__)

OnShares = Callable[[Mapping[str, float]], Awaitable[None]]


def share_of(tenant: types_pb2.Tenant) -> float:
    """The registry's share, or DEFAULT_SHARE when it is unset or not a positive number
    (the scheduler reads shares the same way, so both compute the same factor)."""
    share = tenant.share
    return share if math.isfinite(share) and share > 0 else DEFAULT_SHARE


def apply_update(
    shares: Mapping[str, float], tenants: Sequence[types_pb2.Tenant], removed: Sequence[str], snapshot: bool
) -> dict[str, float]:
    """The shares after one WatchTenants message (a snapshot replaces them all)."""
    out = {} if snapshot else dict(shares)
    for t in tenants:
        out[t.name] = share_of(t)
    for name in removed:
        out.pop(name, None)
    return out


class TenantFollower:
    """Follows WatchTenants and calls `on_shares` with the whole map after every change."""

    def __init__(
        self,
        address: str,
        token: str,
        on_shares: OnShares,
        *,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 10.0,
    ) -> None:
        self.address = address
        self._token = token
        self._on_shares = on_shares
        self._backoff_initial = backoff_initial_s
        self._backoff_max = backoff_max_s
        self.shares: dict[str, float] = {}
        self.connected = False
        self.reconnects = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="profile-store-watch-tenants")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        backoff = self._backoff_initial
        while True:
            try:
                if await self._follow_once():
                    backoff = self._backoff_initial
            except grpc.aio.AioRpcError as exc:
                log.info(
                    "tenant watch unavailable, retrying",
                    extra={"address": self.address, "code": exc.code().name, "retry_s": backoff},
                )
            except Exception:  # a bug or a broken callback must not end the follower
                log.exception("tenant watch failed, retrying", extra={"address": self.address})
            self.connected = False
            self.reconnects += 1
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._backoff_max)

    async def _follow_once(self) -> bool:
        """One stream until it ends; True when it delivered at least one message."""
        got_any = False
        async with authed_channel(self.address, self._token) as channel:
            stub = classifier_pb2_grpc.ClassifierServiceStub(channel)
            async for msg in stub.WatchTenants(classifier_pb2.WatchTenantsRequest()):
                got_any = self.connected = True
                shares = apply_update(self.shares, msg.tenants, msg.removed, msg.snapshot)
                if shares != self.shares or msg.snapshot:
                    self.shares = shares
                    await self._on_shares(shares)
        return got_any
