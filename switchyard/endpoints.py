"""Where the services listen: port plans for the local mesh, and gRPC health checks.

Health (grpc.health.v1) is open on every service, without a token.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from switchyard.errors import SwitchyardError

# Offsets from the base (classifier) port; workers take base+10, base+11, …
OFFSETS = {"classifier": 0, "scheduler": 1, "profile_store": 2}
WORKER_OFFSET = 10
# Each service's Prometheus endpoint listens on its gRPC port + METRICS_OFFSET.
METRICS_OFFSET = 1000


@dataclass(frozen=True)
class PortPlan:
    services: dict[str, int]
    workers: list[str] = field(default_factory=list)
    metrics: dict[str, int] = field(default_factory=dict)

    def port(self, name: str) -> int:
        return self.services[name]


def plan_ports(host: str, base_port: int, workers: Sequence[str]) -> PortPlan:
    """Fixed ports from `base_port` (checked free), or free ports when `base_port` is 0."""
    names = [*OFFSETS, *workers]
    if base_port == 0:
        picked = free_ports(host, 2 * len(names))
        grpc_ports = dict(zip(names, picked[: len(names)], strict=True))
        return PortPlan(grpc_ports, list(workers), dict(zip(names, picked[len(names) :], strict=True)))
    ports = {name: base_port + offset for name, offset in OFFSETS.items()}
    ports.update({w: base_port + WORKER_OFFSET + i for i, w in enumerate(workers)})
    metrics = {name: port + METRICS_OFFSET for name, port in ports.items()}
    for name, port in [*ports.items(), *((f"{n} metrics", p) for n, p in metrics.items())]:
        if not 0 < port < 65536:
            raise SwitchyardError("INVALID_ARGUMENT", f"{name}: port {port} out of range", reason="BAD_PORT")
        if not port_is_free(host, port):
            raise SwitchyardError(
                "FAILED_PRECONDITION",
                f"port {port} ({name}) on {host} is in use: is another mesh running? "
                "Pick another --base-port, or 0 for free ports",
                reason="PORT_IN_USE",
            )
    return PortPlan(ports, list(workers), metrics)


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_ports(host: str, count: int) -> list[int]:
    """`count` distinct ports free right now (held together while picking, so distinct)."""
    sockets = [socket.socket(_family(host), socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


async def health_status(address: str, *, service: str = "", timeout: float = 3.0) -> str:
    """ "SERVING", "NOT_SERVING", … or "UNREACHABLE: <why>" when the call itself fails."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub: Any = health_pb2_grpc.HealthStub(channel)
        try:
            response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            return f"UNREACHABLE: {exc.code().name} {exc.details() or ''}".rstrip()
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


async def is_serving(address: str, *, timeout: float = 1.0) -> bool:
    return await health_status(address, timeout=timeout) == "SERVING"
