"""One server bootstrap for every service: grpc.aio, health, reflection, the interceptor,
metrics, a garbage collector settled after start-up, and a graceful stop on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from common.auth import Authenticator
from common.config import ServerConfig, load_config
from common.errors import ConfigError
from common.interceptor import ServiceInterceptor
from common.logs import configure_logging
from common.telemetry import start_metrics_endpoint

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 32 * 1024 * 1024
# The collector's thresholds once a service has started: a young collection every 5,000 net
# allocations instead of CPython's 700 (a request path allocates thousands of short-lived
# objects; refcounting frees all but the cycles), the older generations as CPython has them.
GC_THRESHOLDS = (5_000, 10, 10)
C = TypeVar("C", bound=ServerConfig)


@dataclass(frozen=True)
class Registration:
    """A servicer, the generated `add_*_to_server` function, and its full service name."""

    add: Callable[[Any, grpc.aio.Server], None]
    servicer: Any
    full_name: str


class GrpcServer:
    """A started grpc.aio server with health and reflection; SERVING only when told."""

    def __init__(
        self,
        name: str,
        config: ServerConfig,
        registrations: Sequence[Registration],
        authenticator: Authenticator | None,
    ) -> None:
        self.name = name
        self.config = config
        self.registrations = list(registrations)
        self.health = health.aio.HealthServicer()
        self.server = grpc.aio.server(
            interceptors=[ServiceInterceptor(name, authenticator)],
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", 0),
                # Clients (workers, the classifier) ping every 20 s to notice dead peers even on
                # idle streams; accept that instead of answering GOAWAY "too_many_pings".
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
                ("grpc.http2.max_ping_strikes", 0),
            ],
        )
        self.port = 0
        self.metrics_port: int | None = None

    @property
    def address(self) -> str:
        return f"{self.config.host}:{self.port}"

    async def start(self) -> int:
        for reg in self.registrations:
            reg.add(reg.servicer, self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        names = [reg.full_name for reg in self.registrations]
        reflection.enable_server_reflection(
            [*names, health.SERVICE_NAME, reflection.SERVICE_NAME], self.server
        )
        self.port = self.server.add_insecure_port(f"{self.config.host}:{self.config.port}")
        if self.port == 0:
            raise OSError(f"{self.name}: cannot bind {self.config.host}:{self.config.port}")
        await self.set_serving(False)
        await self.server.start()
        self.metrics_port = start_metrics_endpoint(self.config.host, self.config.metrics_port)
        log.info("grpc server listening", extra={"address": self.address})
        return self.port

    async def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ["", *(reg.full_name for reg in self.registrations)]:
            await self.health.set(name, status)

    async def stop(self, grace: float | None = None) -> None:
        await self.set_serving(False)
        await self.server.stop(self.config.grace_period_s if grace is None else grace)


class App(Protocol):
    """A service's composition root: start everything, then stop it in reverse."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def run_until_signal(app: App) -> None:
    """Start the app, wait for SIGTERM or SIGINT, then stop it gracefully."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await app.start()
    try:
        await stop.wait()
        log.info("stopping on signal")
    finally:
        await app.stop()
    log.info("stopped")


def settle_gc() -> None:
    """Take what start-up left (modules, classes, the app's wiring) out of the garbage
    collector's sight and make its young collections rarer.

    What is alive after start-up lives as long as the process, yet every full collection
    walks it again: `gc.freeze()` moves it to the permanent generation that collections
    skip (start-up garbage is collected first, so none is kept). Objects allocated later
    are collected as before, with `GC_THRESHOLDS`. In the profile store's ingest
    benchmark this took the collector from about 11% of the wall time to about 3%.
    Standard CPython, no configuration; `service_main` calls it once the app is built.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def service_main(
    name: str,
    config_cls: type[C],
    build: Callable[[C], App],
    *,
    overrides: Mapping[str, Any] | None = None,
) -> None:
    """The body of every `python -m services.<name>`: load and validate the config (a bad
    one stops the process with every problem listed), set up logs, build the app inside
    the running loop (grpc.aio binds to it), settle the garbage collector (`settle_gc`) and
    serve until SIGTERM/SIGINT."""
    try:
        config = load_config(config_cls, env=os.environ, overrides=overrides)
    except ConfigError as exc:
        sys.exit(f"{name}: {exc}")
    configure_logging(name, config.log_level, config.log_format)

    async def main() -> None:
        app = build(config)
        settle_gc()
        await run_until_signal(app)

    event_loop_runner(os.environ)(main())


def event_loop_runner(env: Mapping[str, str]) -> Callable[[Coroutine[Any, Any, None]], None]:
    """How a service runs its loop: uvloop's (the same asyncio code on a loop written in C,
    measured faster for this gRPC work) when installed, else asyncio's; with
    SWITCHYARD_EVENT_LOOP=asyncio always asyncio's."""
    choice = env.get("SWITCHYARD_EVENT_LOOP", "auto")
    if choice not in ("auto", "uvloop", "asyncio"):
        sys.exit(f"SWITCHYARD_EVENT_LOOP: {choice!r} is not one of auto, uvloop, asyncio")
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                sys.exit("SWITCHYARD_EVENT_LOOP=uvloop, but uvloop is not installed")
        else:
            return uvloop.run
    return asyncio.run
