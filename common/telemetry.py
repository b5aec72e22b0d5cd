"""Prometheus metrics shared by every service, and the endpoint that serves them."""

from __future__ import annotations

import logging

from prometheus_client import Counter, Histogram, start_http_server

log = logging.getLogger(__name__)

RPC_TOTAL = Counter("switchyard_rpc_total", "gRPC calls handled", ["service", "method", "code"])
RPC_SECONDS = Histogram(
    "switchyard_rpc_seconds",
    "gRPC handling time (unary: whole call; streams: until the stream ends)",
    ["service", "method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60),
)


def start_metrics_endpoint(host: str, port: int) -> int | None:
    """Serve /metrics over HTTP; return the bound port (None when port is -1)."""
    if port < 0:
        return None
    server, _thread = start_http_server(port, addr=host)
    bound = int(server.server_address[1])
    log.info("metrics endpoint listening", extra={"metrics_port": bound})
    return bound
