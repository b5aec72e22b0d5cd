"""Composition root of the profile store: migrations, engine, store, servicer, server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path

from common import db
from common.auth import InternalAuthenticator
from common.server import GrpcServer, Registration
from services.profile_store.config import ProfileStoreConfig
from services.profile_store.feed import ChangeFeed
from services.profile_store.servicer import ProfileStoreServicer
from services.profile_store.sql_store import SqlProfileStore
from services.profile_store.tenants import TenantFollower
from switchyard.v1 import profile_store_pb2_grpc

log = logging.getLogger(__name__)

SCHEMA = "profile_store"
MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE_NAME = "switchyard.v1.ProfileStoreService"


class ProfileStoreApp:
    """Start: migrate, open the store, serve, then report SERVING. Stop in reverse."""

    def __init__(self, config: ProfileStoreConfig) -> None:
        self.config = config
        self.feed = ChangeFeed(config.watch_coalesce_s)
        self.store: SqlProfileStore | None = None
        self.servicer: ProfileStoreServicer | None = None
        self.server: GrpcServer | None = None
        self.tenants: TenantFollower | None = None

    async def start(self) -> None:
        config = self.config
        await asyncio.to_thread(db.upgrade, config.database_url, SCHEMA, MIGRATIONS)
        self.store = SqlProfileStore(
            db.create_engine(config.database_url, SCHEMA),
            ewma_alpha=config.ewma_alpha,
            usage_half_life_s=config.usage_half_life_s,
            reference_device=config.reference_device,
            speed_min_samples=config.speed_min_samples,
        )
        self.servicer = ProfileStoreServicer(
            self.store,
            self.feed,
            internal_token=config.internal_token,
            batch_max=config.ingest_batch_max,
            commit_max=config.ingest_commit_max,
        )
        registration = Registration(
            profile_store_pb2_grpc.add_ProfileStoreServiceServicer_to_server, self.servicer, SERVICE_NAME
        )
        self.server = GrpcServer(
            "profile_store", config, [registration], InternalAuthenticator(config.internal_token)
        )
        await self.server.start()
        await self.server.set_serving(True)
        if config.classifier_address:
            self.tenants = TenantFollower(config.classifier_address, config.internal_token, self._on_shares)
            self.tenants.start()
        log.info("profile store ready", extra={"port": self.server.port})

    async def _on_shares(self, shares: Mapping[str, float]) -> None:
        """New shares from the registry: every tenant's score changes, so republish them all."""
        assert self.store is not None
        self.store.set_shares(shares)
        self.feed.publish_scores(await self.store.tenant_scores())
        log.info("tenant shares updated", extra={"tenants": len(shares)})

    async def stop(self) -> None:
        if self.tenants is not None:
            await self.tenants.stop()
        # Ending the watch streams first lets the server's grace period finish quickly.
        self.feed.close()
        if self.server is not None:
            await self.server.stop()
        if self.servicer is not None:
            await self.servicer.close()
        if self.store is not None:
            await self.store.close()
