"""`switchyard up`: run the local mesh in the foreground until Ctrl-C, SIGTERM or SIGHUP.

The services run in their own process groups under lifelines (see `switchyard.processes`),
so a terminal's Ctrl-C reaches only this process, which then stops them in order. If this
process is killed outright, each lifeline notices its closed pipe and stops its service.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from switchyard import render
from switchyard.mesh import Mesh, MeshError, MeshOptions


def options_from_args(args: argparse.Namespace) -> MeshOptions:
    return MeshOptions(
        data_dir=args.data_dir,
        database_url=args.database_url,
        cpu_workers=args.cpu_workers,
        gpu_workers=args.gpu_workers,
        slots=args.slots,
        base_port=args.base_port,
        host=args.host,
        internal_token=args.internal_token,
        category_profile=args.category_profile,
        startup_timeout_s=args.startup_timeout,
        log_level=args.log_level,
        log_format=args.log_format,
    )


def _echo(line: str) -> None:
    print(line, flush=True)


def describe(mesh: Mesh) -> str:
    """What `up` prints once every service is SERVING."""
    metrics = mesh.metrics_addresses
    rows = [
        [n, a, metrics.get(n, "-"), mesh.processes[n].pid, mesh.processes[n].log_path]
        for n, a in mesh.addresses.items()
    ]
    # PGID: each service's process group (its lifeline's pid); `kill -- -PGID` reaches all of it.
    parts = [render.table(("SERVICE", "ADDRESS", "METRICS", "PGID", "LOG"), rows)]
    storage = mesh.options.database_url or f"SQLite files in {mesh.data_dir}"
    parts.append(f"storage: {storage}; category profile: {mesh.category_profile}")
    if mesh.tokens:
        parts.append("demo tenants:\n" + render.table(("TENANT", "TOKEN"), sorted(mesh.tokens.items())))
        first = sorted(mesh.tokens)[0]
        parts.append(
            "try:\n"
            f"  export SWITCHYARD_ADDRESS={mesh.classifier_address}\n"
            f"  export SWITCHYARD_TOKEN={mesh.tokens[first]}   # tenant {first}\n"
            "  switchyard submit inference --model mlp --batch-size 8 --wait"
        )
    parts.append("press Ctrl-C to stop")
    return "\n\n".join(parts)


async def _serve(mesh: Mesh) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    starting = asyncio.create_task(mesh.start())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():
        starting.cancel()  # Mesh.start stops whatever it had started
        await asyncio.gather(starting, return_exceptions=True)
        _echo("stopped before the mesh was up")
        return 130
    starting.result()  # raises MeshError if the start failed
    _echo(describe(mesh))
    exited = asyncio.create_task(mesh.wait_for_exit())
    await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if exited.done():
        _report(exited.result())
        code = 1
    exited.cancel()
    _echo("stopping the mesh…")
    await mesh.stop()
    _echo("stopped")
    return code


def _report(error: MeshError) -> None:
    print(f"error: {error.message}", file=sys.stderr)
    for line in error.log_tail:
        print(f"  | {line}", file=sys.stderr)


def run_up(args: argparse.Namespace) -> int:
    mesh = Mesh(options_from_args(args), echo=_echo)
    try:
        return asyncio.run(_serve(mesh))
    except MeshError as exc:
        _report(exc)
        return 1
    finally:
        mesh.kill()  # a no-op after a clean stop
