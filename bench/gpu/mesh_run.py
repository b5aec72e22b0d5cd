"""A short run of the whole mesh: create_synthetic_data tasks must be placed on the worker
kind under test, and that worker's metrics must reach the profile store under its device name.

With a GPU: one GPU and one CPU worker and the default category profile, so the create tasks
are GPU_ONLY and must all run on the GPU worker. With `--device cpu`: CPU workers only, so
the mesh loads the local profile (create becomes CPU_OR_GPU) and the tasks run on the CPU.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.gpu.results import MeshResult, Profile

MISSING_WHEELS = "carry the wheels, see docs/gpu.md"
CATEGORY = "create_synthetic_data"


async def mesh_check(
    data_dir: Path,
    *,
    tasks: int,
    items: int,
    timeout_s: float,
    device_name: str,
    gpu_workers: int = 1,
    cpu_workers: int = 1,
) -> MeshResult:
    """Start the mesh on free ports and SQLite, submit create tasks, check placement and profiles."""
    try:
        from switchyard import Client
        from switchyard.mesh import Mesh, MeshOptions
    except ImportError as exc:
        return MeshResult(ran=False, note=f"skipped: {exc} ({MISSING_WHEELS})")
    from switchyard.v1 import types_pb2

    started = time.perf_counter()
    target = "gpu" if gpu_workers else "cpu"
    options = MeshOptions(
        base_port=0,
        gpu_workers=gpu_workers,
        cpu_workers=cpu_workers,
        data_dir=data_dir,
        log_level="WARNING",
    )
    async with Mesh(options, echo=lambda line: print(f"  mesh: {line}", flush=True)) as mesh:
        token = next(iter(mesh.tokens.values()))
        async with Client(mesh.classifier_address, token) as client:
            specs = [
                types_pb2.TaskSpec(category=CATEGORY, item_count=items, batch_size=items)
                for _ in range(tasks)
            ]
            for i, spec in enumerate(specs):
                spec.parameters.update({"seed": i, "image_size": 64})
            submitted = await client.submit(specs)
            done = await client.wait(submitted.task_ids, timeout=timeout_s)
        succeeded = sum(t.state == types_pb2.TASK_STATE_SUCCEEDED for t in done)
        profiles = await _profiles(mesh.profile_store_address, mesh.internal_token, device_name, succeeded)
        category_profile = mesh.category_profile
    return MeshResult(
        ran=True,
        target=target,
        device_name=device_name,
        category_profile=category_profile,
        tasks=len(done),
        on_target=sum(t.worker_id.startswith(f"{target}-") for t in done),
        eligibility=dict(Counter(types_pb2.Eligibility.Name(t.eligibility) for t in done)),
        workers=dict(Counter(t.worker_id for t in done)),
        states=dict(Counter(types_pb2.TaskState.Name(t.state) for t in done)),
        profiles=tuple(profiles),
        seconds=time.perf_counter() - started,
    )


async def _profiles(address: str, token: str, device_name: str, expect: int) -> list[Profile]:
    """The profile store's rows, polled (for up to 30 s: metrics ship asynchronously) until
    `device_name`'s create profile counts `expect` results."""
    from common.channels import authed_channel
    from switchyard.v1 import profile_store_pb2, profile_store_pb2_grpc, types_pb2

    rows: list[Profile] = []
    async with authed_channel(address, token) as channel:
        stub: Any = profile_store_pb2_grpc.ProfileStoreServiceStub(channel)
        for _ in range(60):
            reply = await stub.ListProfiles(profile_store_pb2.ListProfilesRequest(page_size=500))
            rows = [
                Profile(
                    p.key.device_model,
                    p.key.model.name,
                    types_pb2.Precision.Name(p.key.precision),
                    p.key.category,
                    int(p.count),
                    float(p.items_per_second),
                )
                for p in reply.profiles
            ]
            counted = sum(r.count for r in rows if r.device_model == device_name and r.category == CATEGORY)
            if counted >= expect:
                break
            await asyncio.sleep(0.5)
    return rows
