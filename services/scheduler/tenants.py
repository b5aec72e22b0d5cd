"""Tenants as the scheduler sees them: shares and quotas from the classifier's registry
(a WatchTenants stream), and the counts and submit-rate buckets it enforces them with."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import grpc

from common.channels import authed_channel
from common.errors import QuotaViolation, ResourceExhausted
from switchyard.v1 import classifier_pb2, classifier_pb2_grpc, types_pb2

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Quotas:
    """Zero means unlimited."""

    max_queued: int = 0
    max_running: int = 0
    rate_per_s: float = 0.0
    burst: int = 0


@dataclass
class Bucket:
    """A token bucket for the submit rate (tasks per second, with a burst)."""

    tokens: float
    at: float

    def take(self, n: int, quotas: Quotas, now: float) -> float:
        """Take n tokens; return 0 when allowed, else the seconds until they would be."""
        capacity = float(max(quotas.burst, n, 1))
        self.tokens = min(capacity, self.tokens + (now - self.at) * quotas.rate_per_s)
        self.at = now
        if self.tokens >= n:
            self.tokens -= n
            return 0.0
        return (n - self.tokens) / quotas.rate_per_s


@dataclass
class TenantBook:
    shares: dict[str, float] = field(default_factory=dict)
    quotas: dict[str, Quotas] = field(default_factory=dict)
    queued: dict[str, int] = field(default_factory=dict)
    running: dict[str, int] = field(default_factory=dict)
    buckets: dict[str, Bucket] = field(default_factory=dict)

    def apply(self, tenants: list[types_pb2.Tenant], removed: list[str], snapshot: bool) -> None:
        if snapshot:
            self.shares.clear()
            self.quotas.clear()
        for t in tenants:
            self.shares[t.name] = t.share if t.share > 0 else 1.0
            q = t.quotas
            self.quotas[t.name] = Quotas(
                q.max_queued_tasks, q.max_running_tasks, q.submit_rate_per_second, q.submit_burst
            )
        for name in removed:
            self.shares.pop(name, None)
            self.quotas.pop(name, None)

    def admit(self, tenant: str, n: int, now: float) -> None:
        """Check a submit of n tasks against the queued quota and the submit rate."""
        quotas = self.quotas.get(tenant, Quotas())
        if quotas.max_queued and self.queued.get(tenant, 0) + n > quotas.max_queued:
            held = self.queued.get(tenant, 0)
            raise ResourceExhausted(
                f"tenant {tenant!r} would have {held + n} queued tasks, over its quota {quotas.max_queued}",
                [QuotaViolation(f"tenant:{tenant}", f"queued tasks {held} + {n} > {quotas.max_queued}")],
                reason="QUEUED_QUOTA_EXCEEDED",
            )
        if quotas.rate_per_s > 0:
            bucket = self.buckets.setdefault(tenant, Bucket(float(max(quotas.burst, 1)), now))
            wait = bucket.take(n, quotas, now)
            if wait > 0:
                raise ResourceExhausted(
                    f"tenant {tenant!r} is over its submit rate of {quotas.rate_per_s:g} tasks/s",
                    [
                        QuotaViolation(
                            f"tenant:{tenant}", f"submit rate {quotas.rate_per_s:g}/s; retry in {wait:.2f}s"
                        )
                    ],
                    reason="SUBMIT_RATE_EXCEEDED",
                )

    def at_running_cap(self, tenant: str) -> bool:
        cap = self.quotas.get(tenant, Quotas()).max_running
        return bool(cap) and self.running.get(tenant, 0) >= cap

    def count(self, table: dict[str, int], tenant: str, delta: int) -> None:
        table[tenant] = max(table.get(tenant, 0) + delta, 0)


class TenantFeed:
    """Follows the classifier's WatchTenants stream, reconnecting with backoff."""

    def __init__(self, book: TenantBook, address: str, token: str) -> None:
        self.book = book
        self.address = address
        self.token = token
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._follow(), name="watch-tenants")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _follow(self) -> None:
        backoff = 0.2
        while True:
            try:
                async with authed_channel(self.address, self.token) as channel:
                    stub = classifier_pb2_grpc.ClassifierServiceStub(channel)
                    async for msg in stub.WatchTenants(classifier_pb2.WatchTenantsRequest()):
                        self.book.apply(list(msg.tenants), list(msg.removed), msg.snapshot)
                        backoff = 0.2
            except grpc.aio.AioRpcError as exc:
                log.debug("tenant watch broken", extra={"code": exc.code().name})
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
