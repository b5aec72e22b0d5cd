"""Client channels for service-to-service and SDK calls, with bearer-token metadata."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import grpc

CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 32 * 1024 * 1024),
    ("grpc.max_send_message_length", 32 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]


class _Metadata:
    def __init__(self, token: str) -> None:
        self._pairs = (("authorization", f"Bearer {token}"),)

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()), *self._pairs)
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )


class _UnaryUnary(_Metadata, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _UnaryStream(_Metadata, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _StreamUnary(_Metadata, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return await continuation(self._details(details), request_iterator)


class _StreamStream(_Metadata, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return await continuation(self._details(details), request_iterator)


def channel_target(address: str, health_service: str = "") -> tuple[str, list[tuple[str, Any]]]:
    """The gRPC target and options for "host:port" or "host:port,host:port,…".

    With several addresses (an active scheduler and its standby), calls go only to those
    whose health service reports SERVING: client-side health checking over round_robin.
    """
    addresses = [a.strip() for a in address.split(",") if a.strip()]
    if len(addresses) < 2:
        return address, list(CHANNEL_OPTIONS)
    if not all(_is_ipv4(a.rpartition(":")[0]) for a in addresses):
        # gRPC's static multi-address target takes IP literals only; DNS names rely on the
        # name resolving to the active instance (a Kubernetes Service with a readiness probe).
        return addresses[0], list(CHANNEL_OPTIONS)
    config = {
        "loadBalancingConfig": [{"round_robin": {}}],
        "healthCheckConfig": {"serviceName": health_service},
    }
    return "ipv4:" + ",".join(addresses), [*CHANNEL_OPTIONS, ("grpc.service_config", json.dumps(config))]


def bearer(token: str | None) -> tuple[tuple[str, str], ...]:
    """The call metadata that `authed_channel` adds, for a long-lived stream opened on a
    plain channel: a stream-stream interceptor would put every write through a queue and a
    generator of its own, which costs the busiest streams (the worker's) per message."""
    return (("authorization", f"Bearer {token}"),) if token else ()


def authed_channel(address: str, token: str | None, *, health_service: str = "") -> grpc.aio.Channel:
    """An insecure (loopback or mesh-internal) channel that sends `authorization: Bearer`;
    `address` may list several servers, of which only the SERVING ones are used."""
    interceptors: list[Any] = []
    if token:
        interceptors = [_UnaryUnary(token), _UnaryStream(token), _StreamUnary(token), _StreamStream(token)]
    target, options = channel_target(address, health_service)
    return grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)


def _is_ipv4(host: str) -> bool:
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True
