"""The scheduler's composition root: config → store → engine → loops → gRPC server."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from common.auth import InternalAuthenticator
from common.db import create_engine, is_postgres, upgrade
from common.server import GrpcServer, Registration
from services.scheduler.config import SchedulerConfig
from services.scheduler.convert import record_from_row
from services.scheduler.core.clock import Clock, SystemClock
from services.scheduler.engine import Engine
from services.scheduler.leader import Leadership
from services.scheduler.pg_store import PostgresTaskStore
from services.scheduler.profiles import ProfileCache, ProfileFeed
from services.scheduler.servicer import SchedulerServicer
from services.scheduler.sql_store import SqlTaskStore
from services.scheduler.tenants import TenantFeed
from switchyard.v1 import scheduler_pb2_grpc

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class SchedulerApp:
    def __init__(self, config: SchedulerConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.db = create_engine(config.database_url, "scheduler")
        self.store: SqlTaskStore = (
            PostgresTaskStore(self.db, record_from_row, config.database_url, "scheduler")
            if is_postgres(config.database_url)
            else SqlTaskStore(self.db, record_from_row)
        )
        self.profiles = ProfileCache(config.usage_half_life_s, config.fair_share_dampening)
        self.engine = Engine(config, self.store, self.clock, self.profiles)
        self.feed = ProfileFeed(
            self.profiles, config.profile_store_address, config.internal_token, self.clock
        )
        self.tenant_feed = TenantFeed(self.engine.tenants, config.classifier_address, config.internal_token)
        self.server = GrpcServer(
            "scheduler",
            config,
            [
                Registration(
                    scheduler_pb2_grpc.add_SchedulerServiceServicer_to_server,
                    SchedulerServicer(self.engine),
                    "switchyard.v1.SchedulerService",
                )
            ],
            InternalAuthenticator(config.internal_token),
        )
        self.leadership = Leadership(config.database_url, self.db)
        self._loops: list[asyncio.Task[None]] = []
        self._activation: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Serve health at once (NOT_SERVING), and become active once leadership is ours."""
        await asyncio.to_thread(upgrade, self.config.database_url, "scheduler", MIGRATIONS)
        await self.server.start()
        self._activation = asyncio.create_task(self._activate(), name="scheduler-activation")
        await asyncio.wait({self._activation}, timeout=self.config.standby_wait_s)
        if self._activation.done():
            self._activation.result()

    async def _activate(self) -> None:
        if not await self.leadership.acquire():
            return  # stopped while a standby
        self.engine.committer.start()
        restored = await self.engine.restore()
        log.info("queues rebuilt", extra={"restored_tasks": restored})
        self.feed.start()
        self.tenant_feed.start()
        self._loops = [
            asyncio.create_task(self._cycle_loop(), name="placement-cycle"),
            asyncio.create_task(self._every(1.0, self.engine.sweep), name="liveness-sweep"),
            asyncio.create_task(
                self._every(self.config.reprioritize_interval_s, self.engine.reprioritize),
                name="reprioritize",
            ),
            asyncio.create_task(self._step_down_on_loss(), name="leadership-watch"),
        ]
        self.engine.active = True
        await self.server.set_serving(True)

    async def _step_down_on_loss(self) -> None:
        watch = asyncio.create_task(self.leadership.watch())
        try:
            await self.leadership.lost.wait()
        finally:
            # Wait for the check to unwind: a query cancelled half-way must not be left
            # dangling on the lock's connection when it is closed.
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)
        # Another scheduler may be active now: stop taking decisions at once.
        log.error("leadership lost: stepping down")
        self.engine.active = False
        await self.server.set_serving(False)
        for link in list(self.engine.workers.links.values()):
            link.close()

    async def stop(self) -> None:
        await self.server.set_serving(False)
        if self._activation is not None and not self._activation.done():
            self.leadership.abandon()
            await asyncio.gather(self._activation, return_exceptions=True)
        for link in list(self.engine.workers.links.values()):
            link.close()
        await self.server.stop()
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        await self.feed.stop()
        await self.tenant_feed.stop()
        if self.engine.committer.started:
            await self.engine.committer.stop()
        await self.leadership.release()
        await self.store.close()

    async def _cycle_loop(self) -> None:
        """A cycle as soon as something wakes it (an enqueue, a freed slot), and at least every
        `cycle_interval_s` (deadlines, new priorities). It waits on the event itself, not
        through `wait_for`'s extra task, so a wake-up reaches the cycle in one loop turn."""
        engine = self.engine
        ticker = asyncio.create_task(self._every(self.config.cycle_interval_s, engine.wake.set))
        try:
            while True:
                await engine.wake.wait()
                engine.wake.clear()
                await self._one_cycle()
        finally:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)

    async def _one_cycle(self) -> None:
        engine = self.engine
        try:
            await engine.run_cycle()
        except Exception:
            log.exception("placement cycle failed")
            await asyncio.sleep(0.5)

    @staticmethod
    async def _every(seconds: float, action: object) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                action()  # type: ignore[operator]
            except Exception:
                log.exception("periodic task failed")
