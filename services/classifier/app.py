"""The classifier's composition root: config → migrations, tenant store, scheduler client,
servicer, gRPC server (health, reflection, auth) → SERVING."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import grpc

from common.auth import Principal
from common.channels import bearer, channel_target
from common.db import create_engine, upgrade
from common.server import GrpcServer, Registration
from services.classifier.auth import TokenAuthenticator
from services.classifier.catalogue import load_catalogue
from services.classifier.config import ClassifierConfig
from services.classifier.forward import SchedulerRelay, add_classifier_servicer
from services.classifier.intake import Intake
from services.classifier.rules import Catalogue, localised_names
from services.classifier.servicer import ClassifierServicer
from services.classifier.sql_store import SqlTenantStore
from services.classifier.validation import Limits
from switchyard.v1 import scheduler_pb2_grpc

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE_NAME = "switchyard.v1.ClassifierService"
ANONYMOUS = Principal(tenant="default", user="anonymous")


class ClassifierApp:
    """Start: catalogue, migrations, store, scheduler channel, server; stop in reverse."""

    def __init__(self, config: ClassifierConfig) -> None:
        self.config = config
        self.catalogue: Catalogue = load_catalogue(config.categories_file, config.category_profile)
        self.store: SqlTenantStore | None = None
        self.channel: grpc.aio.Channel | None = None
        self.authenticator: TokenAuthenticator | None = None
        self._server: GrpcServer | None = None

    @property
    def server(self) -> GrpcServer:
        if self._server is None:
            raise RuntimeError("ClassifierApp is not started")
        return self._server

    async def start(self) -> None:
        config = self.config
        self._log_catalogue()
        await asyncio.to_thread(upgrade, config.database_url, "classifier", MIGRATIONS)
        self.store = SqlTenantStore(create_engine(config.database_url, "classifier"))
        # "active,standby" addresses: calls go to whichever scheduler reports SERVING. The
        # servicer sends the bearer token with each call (no channel interceptors).
        target, options = channel_target(config.scheduler_address, "switchyard.v1.SchedulerService")
        self.channel = grpc.aio.insecure_channel(target, options=options)
        limits = Limits(
            max_tasks_per_submit=config.max_tasks_per_submit,
            max_task_data_bytes=config.max_task_data_bytes,
            max_task_parameters_bytes=config.max_task_parameters_bytes,
            max_submit_bytes=config.max_submit_bytes,
        )
        servicer = ClassifierServicer(
            Intake(self.catalogue, limits),
            scheduler_pb2_grpc.SchedulerServiceStub(self.channel),
            relay=SchedulerRelay(self.channel),
            timeout_s=config.scheduler_timeout_s,
            anonymous=ANONYMOUS if config.allow_anonymous else None,
            tenants=self.store.list_tenants,
            tenant_poll_s=config.tenant_watch_poll_s,
            scheduler_metadata=bearer(config.internal_token),
        )
        if config.allow_anonymous:
            log.warning("authentication is OFF (allow_anonymous): every caller is tenant 'default'")
        else:
            self.authenticator = TokenAuthenticator(
                self.store, config.internal_token, cache_s=config.token_cache_s
            )
        registration = Registration(add_classifier_servicer, servicer, SERVICE_NAME)
        self._server = GrpcServer("classifier", config, [registration], self.authenticator)
        await self._server.start()
        await self._server.set_serving(True)
        log.info(
            "classifier serving", extra={"port": self._server.port, "scheduler": config.scheduler_address}
        )

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop()
        if self.channel is not None:
            await self.channel.close()
        if self.store is not None:
            await self.store.close()

    def _log_catalogue(self) -> None:
        changed = localised_names(self.catalogue)
        if changed:
            log.warning(
                "category profile 'local': GPU_ONLY categories run as CPU_OR_GPU on this machine",
                extra={"categories": ",".join(changed)},
            )
        log.info("category catalogue", extra={"categories": ",".join(self.catalogue.names())})
