"""Connected workers: their slots, liveness and the link that carries their messages."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field

from services.scheduler.core.model import KINDS_FOR_GROUP, TaskDemand, WorkerSlots
from services.scheduler.core.placement import fits
from switchyard.v1 import scheduler_pb2, types_pb2

CLOSE = None


@dataclass
class WorkerLink:
    """The scheduler's end of one worker's ConnectWorker stream."""

    slots: WorkerSlots
    info: types_pb2.WorkerInfo
    outbound: asyncio.Queue[scheduler_pb2.ConnectWorkerResponse | None] = field(default_factory=asyncio.Queue)
    telemetry: types_pb2.Telemetry = field(default_factory=types_pb2.Telemetry)

    def send(self, message: scheduler_pb2.ConnectWorkerResponse) -> None:
        self.outbound.put_nowait(message)

    def close(self) -> None:
        self.outbound.put_nowait(CLOSE)


class WorkerRegistry:
    """Workers indexed by device class, so placement compares classes, not workers."""

    def __init__(self) -> None:
        self.links: dict[str, WorkerLink] = {}
        self.classes: dict[tuple[int, str], list[WorkerSlots]] = defaultdict(list)

    def add(self, link: WorkerLink) -> None:
        self.links[link.slots.worker_id] = link
        self.classes[(int(link.slots.kind), link.slots.device_model)].append(link.slots)

    def remove(self, worker_id: str) -> WorkerLink | None:
        link = self.links.pop(worker_id, None)
        if link is not None:
            key = (int(link.slots.kind), link.slots.device_model)
            members = self.classes.get(key, [])
            if link.slots in members:
                members.remove(link.slots)
            if not members:
                self.classes.pop(key, None)
        return link

    def get(self, worker_id: str) -> WorkerLink | None:
        return self.links.get(worker_id)

    def stale(self, now: float, timeout_s: float) -> list[str]:
        return [wid for wid, link in self.links.items() if now - link.slots.last_heartbeat > timeout_s]

    def wait_reasons(self, task: TaskDemand) -> list[str]:
        """Why a queued task is not placed (for Explain)."""
        kinds = "/".join(k.name for k in sorted(KINDS_FOR_GROUP[task.group]))
        eligible = [link.slots for link in self.links.values() if fits(task, link.slots)]
        if not eligible:
            return [f"no eligible worker alive ({kinds} worker for category {task.category!r})"]
        if all(w.free_slots <= 0 for w in eligible):
            return [f"all {len(eligible)} eligible workers are busy"]
        return ["waiting for the next placement cycle (higher-priority tasks first)"]
