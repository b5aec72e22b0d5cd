"""Profiles and tenant scores held in memory for the hot path.

The profile store pushes them over WatchProfiles / WatchTenantScores; until it does (or
while it is down) the scheduler uses its own decayed usage accounting and priors.
"""

from __future__ import annotations

import asyncio
import logging

import grpc

from common.channels import authed_channel
from services.scheduler.core.clock import Clock
from services.scheduler.core.model import ProfileEstimate, ProfileKey
from services.scheduler.core.priority import decay, fair_share_factor, in_flight_charge, usage_scores
from switchyard.v1 import profile_store_pb2, profile_store_pb2_grpc, types_pb2

log = logging.getLogger(__name__)
FAIR_TTL_S = 1.0


def key_from_proto(key: types_pb2.ProfileKey) -> ProfileKey:
    return ProfileKey(key.device_model, key.model.name, int(key.precision), key.batch_bucket, key.category)


class ProfileCache:
    """Profiles and the fair-share factor per tenant, as the placement loop reads them.

    Usage (DESIGN §4) is the profile store's decayed usage of completed work, published over
    WatchTenantScores, plus the in-flight charge of the tasks running now
    (`core.priority.in_flight_charge`, the function the simulator uses), plus what finished
    here since the tenant's last published score. Until scores arrive, and whenever the
    scores stream breaks, completed work is the scheduler's own decayed accounting. Charges
    made here are in wall device-seconds (the scheduler does not know the reference speeds
    the profile store charges in); the next published score replaces them.
    """

    def __init__(self, half_life_s: float, dampening: float = 1.0) -> None:
        self.half_life_s = half_life_s
        self.dampening = dampening
        self.profiles: dict[ProfileKey, ProfileEstimate] = {}
        # Published decayed usage per tenant and when it arrived.
        self.published: dict[str, tuple[float, float]] = {}
        # Shares from the tenant registry (the scheduler's TenantBook keeps this current).
        self.shares: dict[str, float] = {}
        self._local_usage: dict[str, tuple[float, float]] = {}
        # Completed here since the tenant's last published score (published mode only).
        self._pending: dict[str, tuple[float, float]] = {}
        # Running tasks: task id -> (tenant, started_at).
        self._running: dict[str, tuple[str, float]] = {}
        # Factors recomputed at most once per FAIR_TTL_S (queued priorities are refreshed
        # by the periodic reprioritisation anyway).
        self._factors: dict[str, float] = {}
        self._factors_at = float("-inf")

    def estimate(self, key: ProfileKey) -> ProfileEstimate | None:
        return self.profiles.get(key)

    def apply_profiles(self, profiles: list[types_pb2.Profile], snapshot: bool) -> None:
        if snapshot:
            self.profiles.clear()
        for p in profiles:
            seconds = p.ewma_seconds or p.mean_seconds
            self.profiles[key_from_proto(p.key)] = ProfileEstimate(seconds, p.count)

    def apply_scores(self, scores: list[types_pb2.TenantScore], snapshot: bool, now: float) -> None:
        if snapshot:
            self.published.clear()
            self._pending.clear()
        for s in scores:
            self.published[s.tenant] = (max(s.decayed_usage, 0.0), now)
            self._pending.pop(s.tenant, None)
        self._factors_at = float("-inf")

    def started(self, task_id: str, tenant: str, started_at: float) -> None:
        """A task began to run: its tenant is charged in flight from `started_at`."""
        self._running[task_id] = (tenant, started_at)

    def stopped(self, task_id: str) -> None:
        """A task stopped running (finished, requeued, cancelled or lost)."""
        self._running.pop(task_id, None)

    def charge(self, tenant: str, seconds: float, now: float) -> None:
        """Completed work seen here; the profile store's next score for the tenant covers it."""
        if self.published:
            self._add(self._pending, tenant, seconds, now)
        self._add(self._local_usage, tenant, seconds, now)

    def scores_lost(self) -> None:
        """The scores stream broke: go back to the scheduler's own accounting."""
        self.published.clear()
        self._pending.clear()
        self._factors_at = float("-inf")

    def _add(self, book: dict[str, tuple[float, float]], tenant: str, seconds: float, now: float) -> None:
        usage, at = book.get(tenant, (0.0, now))
        book[tenant] = (decay(usage, now - at, self.half_life_s) + seconds, now)

    def usage(self, now: float) -> dict[str, float]:
        """Decayed usage per tenant at `now`, running tasks included."""
        base = self.published if self.published else self._local_usage
        usage = {t: decay(u, now - at, self.half_life_s) for t, (u, at) in base.items()}
        for tenant, (seconds, at) in self._pending.items():
            usage[tenant] = usage.get(tenant, 0.0) + decay(seconds, now - at, self.half_life_s)
        for tenant, started_at in self._running.values():
            usage[tenant] = usage.get(tenant, 0.0) + in_flight_charge(started_at, now)
        return usage

    def fair_share(self, tenant: str, now: float) -> float:
        if now - self._factors_at > FAIR_TTL_S or now < self._factors_at:
            scores = usage_scores(self.usage(now), self.shares)
            self._factors = {t: fair_share_factor(score, 1.0, self.dampening) for t, score in scores.items()}
            self._factors_at = now
        return self._factors.get(tenant, 1.0)


class ProfileFeed:
    """Follows the profile store's watch streams, reconnecting with backoff."""

    def __init__(self, cache: ProfileCache, address: str, token: str, clock: Clock) -> None:
        self.cache = cache
        self.clock = clock
        self.address = address
        self.token = token
        self._tasks: list[asyncio.Task[None]] = []
        self.connected = asyncio.Event()

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._follow(self._profiles), name="watch-profiles"),
            asyncio.create_task(self._follow(self._scores), name="watch-tenant-scores"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _follow(self, body: object) -> None:
        backoff = 0.2
        while True:
            try:
                async with authed_channel(self.address, self.token) as channel:
                    stub = profile_store_pb2_grpc.ProfileStoreServiceStub(channel)
                    await body(stub)  # type: ignore[operator]
            except grpc.aio.AioRpcError as exc:
                log.debug("profile watch broken", extra={"code": exc.code().name})
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def _profiles(self, stub: profile_store_pb2_grpc.ProfileStoreServiceAsyncStub) -> None:
        async for msg in stub.WatchProfiles(profile_store_pb2.WatchProfilesRequest()):
            self.cache.apply_profiles(list(msg.profiles), msg.snapshot)
            self.connected.set()

    async def _scores(self, stub: profile_store_pb2_grpc.ProfileStoreServiceAsyncStub) -> None:
        try:
            async for msg in stub.WatchTenantScores(profile_store_pb2.WatchTenantScoresRequest()):
                self.cache.apply_scores(list(msg.scores), msg.snapshot, self.clock.now())
        finally:
            self.cache.scores_lost()
