"""Alibaba GenAI 2026 (GenTD26): text-to-image requests from 4,247 tenants.

Mapping (the trace gives no cluster, device or tenant shares; these are assumptions):
* request → one task of category create_synthetic_data (GPU_ONLY, priority class 100),
  QoS STANDARD, tenant = `groupId` (every share 1), model = `checkpoint_model_version_id`,
  batch_size = `num_images_per_prompt` (the profile key's bucket), precision unspecified.
* work = `exec_time_seconds` (the whole request: all images, all steps) as seconds on the
  reference device; rows without an execution time are dropped.
* arrival = `gmt_create` - the first request, divided by the time compression; rows keep
  file order at equal seconds.
* cluster: none in the trace; `cluster()` is an assumed fleet of 1-slot GPUs (H100, A100,
  A10, L4) — one request at a time per GPU.
"""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

from services.scheduler.core.model import Group, Kind, QosClass, TaskDemand, WorkerSlots
from services.scheduler.simulator.model import PRIORITY_CLASS, Arrival, SpeedTable

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


def load_requests(traces: Path, compression: float = 1.0, limit: int | None = None) -> list[Arrival]:
    out: list[Arrival] = []
    first: float | None = None
    with (traces / REQUESTS).open(newline="") as f:
        for n, row in enumerate(csv.DictReader(f)):
            if not row["exec_time_seconds"]:
                continue
            at = datetime.strptime(row["gmt_create"], "%Y-%m-%d %H:%M:%S").timestamp()
            first = at if first is None else first
            images = int(float(row["num_images_per_prompt"] or 1))
            demand = TaskDemand(
                task_id=f"genai-{n}",
                tenant=row["groupId"],
                category=CATEGORY,
                group=Group.GPU_ONLY,
                priority_class=PRIORITY_CLASS[CATEGORY],
                qos_class=QosClass.STANDARD,
                model=row["checkpoint_model_version_id"],
                precision=0,
                batch_size=max(images, 1),
                enqueued_at=(at - first) / compression,
            )
            out.append(Arrival(demand, max(float(row["exec_time_seconds"]), 0.1)))
            if limit is not None and len(out) >= limit:
                break
    out.sort(key=lambda a: a.at)
    return out
