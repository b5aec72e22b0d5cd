"""`python -m switchyard.demo` (what `make run` does): a multi-tenant workload on a fresh mesh.

Starts the mesh (`Mesh`, fresh temporary data dir, SQLite, free ports), then three tenants
submit concurrently through the SDK: inference across the zoo models and precisions, the
synthetic-data pipeline (generate → ingest → identify → vary → create, chained by
datablocks and dependencies, the create step split into batches), preprocess and a
training step. It waits for every task, prints a table per tenant and category (tasks,
worker kinds, latency p50/p95 from submit to finish), writes a contact sheet of the
rendered images, stops the mesh, and exits 0 only if every task succeeded.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
import zlib
from pathlib import Path

from switchyard import specs
from switchyard.client import Client
from switchyard.demo_report import failures, summary_table, write_contact_sheet
from switchyard.errors import SwitchyardError
from switchyard.mesh import Mesh, MeshError, MeshOptions
from switchyard.v1 import types_pb2

# model:precision:batch size, per tenant
INFERENCE = {
    "acme": "mlp:fp32:8 mlp:int8:8 resnet_small:fp32:4 transformer_encoder:bf16:8",
    "globex": "resnet_small:bf16:4 resnet_small:int8:4 mlp:bf16:16 transformer_encoder:fp32:8",
    "initech": "transformer_encoder:int8:8 mlp:fp32:32 resnet_small:fp32:8 mlp:int8:16",
}
DEFAULT_MIX = INFERENCE["acme"]
SYNTHETIC_ITEMS, SYNTHETIC_BATCH = 24, 8


async def _submit(client: Client, submitted: list[str], *task_specs: types_pb2.TaskSpec) -> list[str]:
    result = await client.submit(task_specs)
    submitted.extend(result.task_ids)
    return result.task_ids


async def _pipeline(client: Client, tenant: str, submitted: list[str]) -> None:
    """generate → ingest → identify → vary → create (split), each step depending on the last."""
    tag = f"{tenant}-{uuid.uuid4().hex[:8]}"
    labels = {"demo": "pipeline"}
    seed = {"seed": zlib.crc32(tenant.encode()) % 10_000}  # each tenant renders its own images
    [gen] = await _submit(
        client,
        submitted,
        specs.generate_source_assets(items=8, outputs=[f"{tag}-assets"], labels=labels, params=seed),
    )
    [ingest] = await _submit(
        client,
        submitted,
        specs.ingest_source_assets(
            inputs=[f"{tag}-assets"], outputs=[f"{tag}-ingested"], depends_on=[gen], labels=labels
        ),
    )
    [identify] = await _submit(
        client,
        submitted,
        specs.identify_variation_parameters(
            inputs=[f"{tag}-ingested"], outputs=[f"{tag}-space"], depends_on=[ingest], labels=labels
        ),
    )
    [vary] = await _submit(
        client,
        submitted,
        specs.vary_variation_parameters(
            items=SYNTHETIC_ITEMS,
            inputs=[f"{tag}-space"],
            outputs=[f"{tag}-variations"],
            depends_on=[identify],
            labels=labels,
            params=seed,
        ),
    )
    template = specs.create_synthetic_data(
        inputs=[f"{tag}-ingested", f"{tag}-variations"], depends_on=[ingest, vary], labels=labels, params=seed
    )
    result = await client.submit(
        split=specs.split(template, total_items=SYNTHETIC_ITEMS, batch_size=SYNTHETIC_BATCH)
    )
    submitted.extend(result.task_ids)


async def run_tenant(address: str, tenant: str, token: str, timeout: float) -> list[types_pb2.Task]:
    """Submit one tenant's workload, wait for all of it; return its tasks as finished."""
    submitted: list[str] = []
    async with Client(address, token) as client:
        inference = [
            specs.inference(model, precision=precision, batch_size=int(batch), labels={"demo": "inference"})
            for model, precision, batch in (
                item.split(":") for item in INFERENCE.get(tenant, DEFAULT_MIX).split()
            )
        ]
        training = [specs.preprocess(batch_size=32), specs.training_step("mlp", batch_size=16)]
        await asyncio.gather(
            _submit(client, submitted, *inference, *training),
            _pipeline(client, tenant, submitted),
        )
        return await client.wait(submitted, timeout=timeout)


async def run_demo(mesh: Mesh, timeout: float) -> dict[str, list[types_pb2.Task]]:
    tenants = sorted(mesh.tokens)
    print(f"\nsubmitting from {len(tenants)} tenants at once: {', '.join(tenants)}", flush=True)
    results = await asyncio.gather(
        *(run_tenant(mesh.classifier_address, t, mesh.tokens[t], timeout) for t in tenants)
    )
    return dict(zip(tenants, results, strict=True))


async def _main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="switchyard-demo-") as tmp:
        data_dir = args.data_dir or Path(tmp)
        options = MeshOptions(
            data_dir=data_dir, base_port=args.base_port, cpu_workers=args.cpu_workers, slots=args.slots
        )
        started = time.monotonic()
        async with Mesh(options, echo=lambda line: print(line, flush=True)) as mesh:
            print(f"mesh up in {time.monotonic() - started:.1f}s", flush=True)
            began = time.monotonic()
            by_tenant = await run_demo(mesh, args.timeout)
            wall = time.monotonic() - began
            print("\n" + summary_table(by_tenant, wall))
            sheet = (args.data_dir or Path(".switchyard")) / "contact_sheet.png"
            print(await asyncio.to_thread(write_contact_sheet, by_tenant, sheet))
            print("stopping the mesh…", flush=True)
    bad = failures(by_tenant)
    for line in bad:
        print(line, file=sys.stderr)
    print("demo " + ("FAILED" if bad else "OK: every task succeeded"))
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m switchyard.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, help="keep the mesh's data here (default: a temp dir)")
    parser.add_argument("--base-port", type=int, default=0, help="0 (default) picks free ports")
    parser.add_argument("--cpu-workers", type=int, default=2)
    parser.add_argument("--slots", type=int, help="slots per worker (worker default)")
    parser.add_argument("--timeout", type=float, default=150.0, help="seconds to wait for the tasks")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(_main(args))
    except MeshError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        print("\n".join(f"  | {line}" for line in exc.log_tail), file=sys.stderr)
        return 1
    except SwitchyardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
