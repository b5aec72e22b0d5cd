"""Alibaba cluster-trace-gpu-v2023 (openb): the node list as the cluster, pods as tasks.

Mapping (the trace has no tenants, models or device speeds; these are assumptions):
* node → one worker. A GPU node (`model` set) is a GPU worker whose `device_model` is the
  GPU type, with one slot per GPU and the node's memory; a CPU-only node is a CPU worker
  ("CPU") with one slot per 8 cores (`cpu_milli // 8000`, at least 1).
* pod → one task: `num_gpu > 0` → GPU_ONLY, else CPU_ONLY. It takes one slot: a fractional
  pod (`gpu_milli < 1000`) holds a whole GPU (no sharing) and a multi-GPU pod holds one
  slot (75 of 8,152 pods; their extra GPUs are not modelled). `memory_mib` becomes
  `memory_bytes`, checked against the node's memory.
* category and QoS from `qos`: LS → inference / LATENCY_CRITICAL; Guaranteed, Burstable →
  inference / STANDARD; BE → training_step / BATCH; CPU pods → preprocess. No deadline.
* work = `deletion_time - scheduled_time` (or `- creation_time` for the 897 never-scheduled
  pods), at least 1 s, taken as seconds on the reference device (speed 1.0). Pods still
  running at the trace end are right-censored there, as in the trace.
* arrival = `creation_time` - day 115 (the origin: the dense window starts there; the 27
  earlier pods arrive at 0), divided by the time compression. One tenant ("openb").
* skipped (and counted): rows with a missing or unreadable number, or too few columns.
* model = the pod's GPU shape (`g<num_gpu>`, `cpu`), so a profile is the mean work of a shape.
"""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

from services.scheduler.core.model import Group, Kind, QosClass, TaskDemand, WorkerSlots
from services.scheduler.simulator.model import PRIORITY_CLASS, Arrival, SpeedTable
from services.scheduler.simulator.traces import EVERYTHING, Skipped, Window, number

PODS = "alibaba_gpu_v2023/openb_pod_list_default.csv"
NODES = "alibaba_gpu_v2023/openb_node_list_all_node.csv"
DENSE_START_S = 115 * 86400.0
MIB = 1 << 20

# Relative speed, reference 1.0. T4/P100/V100/A10 from their public fp16 training figures,
# rounded; G1/G2/G3 are undisclosed and assumed newer (G3 fastest). T4 is an inference part.
SPEEDS = SpeedTable(
    devices={
        "CPU": 1.0,
        "T4": 0.25,
        "P100": 0.35,
        "V100M16": 0.55,
        "V100M32": 0.6,
        "A10": 0.5,
        "G1": 0.8,
        "G2": 1.0,
        "G3": 1.6,
    },
    per_category={("T4", "inference"): 0.4, ("A10", "inference"): 0.7},
)
QOS = {
    "LS": ("inference", QosClass.LATENCY_CRITICAL),
    "Guaranteed": ("inference", QosClass.STANDARD),
    "Burstable": ("inference", QosClass.STANDARD),
    "BE": ("training_step", QosClass.BATCH),
}


def load_nodes(traces: Path, limit: int | None = None, skipped: Skipped | None = None) -> list[WorkerSlots]:
    path = traces / NODES
    workers: list[WorkerSlots] = []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        for row in reader:
            if limit is not None and len(workers) >= limit:
                break
            try:
                workers.append(_node(row))
            except ValueError as exc:
                if skipped is not None:
                    skipped.add(path, reader.line_num, str(exc))
    return workers


def _node(row: dict[str, str]) -> WorkerSlots:
    gpus, model = int(number(row, "gpu", 0.0)), (row["model"] or "").strip()
    memory = int(number(row, "memory_mib")) * MIB
    if not row["sn"]:
        raise ValueError("sn is empty")
    if model and gpus > 0:
        return WorkerSlots(row["sn"], Kind.GPU, model, gpus, gpus, memory_bytes=memory)
    slots = max(int(number(row, "cpu_milli")) // 8000, 1)
    return WorkerSlots(row["sn"], Kind.CPU, "CPU", slots, slots, memory_bytes=memory)


def load_pods(
    traces: Path,
    compression: float = 1.0,
    limit: int | None = None,
    *,
    window: Window = EVERYTHING,
    skipped: Skipped | None = None,
) -> list[Arrival]:
    """The pods among the first `limit` rows created inside `window` (from day 115)."""
    path = traces / PODS
    pods: list[tuple[float, float, Arrival]] = []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        for n, row in enumerate(reader):
            if limit is not None and n >= limit:
                break
            try:
                pods.append(_pod(row))
            except ValueError as exc:
                if skipped is not None:
                    skipped.add(path, reader.line_num, str(exc))
    pods.sort(key=lambda p: p[0])  # by creation time (the early pods all map to 0)
    out = []
    for _, trace_s, pod in pods:
        if trace_s in window:
            at = window.arrival(trace_s, compression)
            out.append(Arrival(replace(pod.demand, enqueued_at=at), pod.work))
    return out


def _pod(row: dict[str, str]) -> tuple[float, float, Arrival]:
    """(creation time, trace seconds from the origin, the pod as an arrival then)."""
    created, deleted = number(row, "creation_time"), number(row, "deletion_time")
    scheduled = number(row, "scheduled_time", created)
    gpus = int(number(row, "num_gpu", 0.0))
    if not row["name"]:
        raise ValueError("name is empty")
    category, qos = QOS.get(row["qos"] or "", ("inference", QosClass.STANDARD))
    if gpus == 0:
        category = "preprocess"
    trace_s = max(created - DENSE_START_S, 0.0)
    demand = TaskDemand(
        task_id=row["name"],
        tenant="openb",
        category=category,
        group=Group.GPU_ONLY if gpus else Group.CPU_ONLY,
        priority_class=PRIORITY_CLASS[category],
        qos_class=qos,
        model=f"g{gpus}" if gpus else "cpu",
        precision=0,
        batch_size=1,
        enqueued_at=trace_s,
        memory_bytes=int(number(row, "memory_mib")) * MIB,
    )
    return created, trace_s, Arrival(demand, max(deleted - scheduled, 1.0))
