"""Alibaba GenAI 2026 (GenTD26): text-to-image requests from 4,247 tenants.

Mapping (the trace gives no cluster, device or tenant shares; these are assumptions):
* request → one task of category create_synthetic_data (GPU_ONLY, priority class 100),
  QoS STANDARD, tenant = `groupId` (every share 1), model = `checkpoint_model_version_id`,
  batch_size = `num_images_per_prompt` (the profile key's bucket), precision unspecified.
* work = `exec_time_seconds` (the whole request: all images, all steps) as seconds on the
  reference device; rows without an execution time are dropped.
* arrival = `gmt_create` - the earliest request (the origin; a window is counted from it),
  divided by the time compression; rows keep file order at equal seconds.
* skipped (and counted): rows without an execution time, or with an unreadable
  `gmt_create`, number or tenant.
* cluster: none in the trace; `cluster()` is an assumed fleet of 1-slot GPUs (H100, A100,
  A10, L4) — one request at a time per GPU.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

from services.scheduler.core.model import Group, Kind, QosClass, TaskDemand, WorkerSlots
from services.scheduler.simulator.model import PRIORITY_CLASS, Arrival, SpeedTable
from services.scheduler.simulator.traces import EVERYTHING, Skipped, Window, number

REQUESTS = "alibaba_genai_2026/lora_request_trace.csv"
CATEGORY = "create_synthetic_data"
SPEEDS = SpeedTable(devices={"H100": 2.0, "A100": 1.0, "A10": 0.45, "L4": 0.4})
FLEET = {"H100": 2, "A100": 4, "A10": 6, "L4": 4}


def cluster(scale: int = 1) -> list[WorkerSlots]:
    return [
        WorkerSlots(f"{model.lower()}-{i}", Kind.GPU, model, 1, 1)
        for model, n in FLEET.items()
        for i in range(n * scale)
    ]


def load_requests(
    traces: Path,
    compression: float = 1.0,
    limit: int | None = None,
    *,
    window: Window = EVERYTHING,
    skipped: Skipped | None = None,
) -> list[Arrival]:
    """The requests among the first `limit` rows that arrive inside `window`."""
    path = traces / REQUESTS
    rows: list[tuple[float, int, str, str, int, float]] = []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        for n, row in enumerate(reader):
            if limit is not None and n >= limit:
                break
            try:
                rows.append(
                    (
                        _stamp(row),
                        n,
                        _tenant(row),
                        row["checkpoint_model_version_id"] or "unknown",
                        int(number(row, "num_images_per_prompt", 1.0)),
                        number(row, "exec_time_seconds"),
                    )
                )
            except ValueError as exc:
                if skipped is not None:
                    skipped.add(path, reader.line_num, str(exc))
    origin = min((r[0] for r in rows), default=0.0)
    out = []
    for at, n, tenant, model, images, work in sorted(rows, key=lambda r: (r[0], r[1])):
        if at - origin not in window:
            continue
        demand = TaskDemand(
            task_id=f"genai-{n}",
            tenant=tenant,
            category=CATEGORY,
            group=Group.GPU_ONLY,
            priority_class=PRIORITY_CLASS[CATEGORY],
            qos_class=QosClass.STANDARD,
            model=model,
            precision=0,
            batch_size=max(images, 1),
            enqueued_at=window.arrival(at - origin, compression),
        )
        out.append(Arrival(demand, max(work, 0.1)))
    return out


def _stamp(row: dict[str, str]) -> float:
    stamp = datetime.strptime((row["gmt_create"] or "").strip(), "%Y-%m-%d %H:%M:%S")
    return stamp.replace(tzinfo=UTC).timestamp()


def _tenant(row: dict[str, str]) -> str:
    if not row["groupId"]:
        raise ValueError("groupId is empty")
    return row["groupId"]
