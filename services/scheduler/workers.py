"""Connected workers: their slots, liveness and the link that carries their messages."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from services.scheduler.core.fleet import Fleet
from services.scheduler.core.model import KINDS_FOR_GROUP, TaskDemand, WorkerSlots
from services.scheduler.core.placement import fits
from switchyard.v1 import scheduler_pb2, types_pb2

CLOSE = None


@dataclass
class WorkerLink:
    """The scheduler's end of one worker's ConnectWorker stream."""

    slots: WorkerSlots
    info: types_pb2.WorkerInfo
    telemetry: types_pb2.Telemetry = field(default_factory=types_pb2.Telemetry)
    # Assignments held per slot beyond the slot itself, and the mean run time behind it.
    prefetch: int = 0
    run_s: float | None = None
    _outbound: deque[scheduler_pb2.ConnectWorkerResponse | None] = field(default_factory=deque)
    _ready: asyncio.Event = field(default_factory=asyncio.Event)

    def send(self, message: scheduler_pb2.ConnectWorkerResponse) -> None:
        """Queue a message; assignments join assignments still waiting at the tail (cycles
        that ran while the last write was in flight go out as one message)."""
        tail = self._outbound[-1] if self._outbound else None
        if tail is not None and tail.HasField("assignments") and message.HasField("assignments"):
            tail.assignments.assignments.MergeFrom(message.assignments.assignments)
        else:
            self._outbound.append(message)
        self._ready.set()

    def close(self) -> None:
        self._outbound.append(CLOSE)
        self._ready.set()

    async def next_message(self) -> scheduler_pb2.ConnectWorkerResponse | None:
        """The next message to write, or CLOSE."""
        while not self._outbound:
            self._ready.clear()
            await self._ready.wait()
        return self._outbound.popleft()


class WorkerRegistry:
    """Connected workers: their links, and the fleet index placement reads."""

    def __init__(self) -> None:
        self.links: dict[str, WorkerLink] = {}
        self.fleet = Fleet()

    def add(self, link: WorkerLink) -> None:
        self.links[link.slots.worker_id] = link
        self.fleet.add(link.slots)

    def remove(self, worker_id: str) -> WorkerLink | None:
        link = self.links.pop(worker_id, None)
        if link is not None:
            self.fleet.remove(worker_id)
        return link

    def adjust(self, worker: WorkerSlots, delta: int) -> None:
        """Take (delta < 0) or give back (delta > 0) slots, keeping the index current."""
        worker.free_slots += delta
        self.fleet.changed(worker)

    def observe_run(self, link: WorkerLink, seconds: float, window_s: float, bounds: tuple[int, int]) -> None:
        """Fold one task's run time into the worker's mean, and size its prefetch from it:
        as many tasks per slot as fill `window_s`, within `bounds` (the configured minimum
        and the cap). The room changes by the difference, so held tasks stay counted."""
        run_s = max(seconds, 0.0)
        link.run_s = run_s if link.run_s is None else 0.8 * link.run_s + 0.2 * run_s
        low, high = bounds
        fill = int(window_s / link.run_s) if link.run_s > 0 else high
        want = max(low, min(high, fill if window_s > 0 else 0))
        if want != link.prefetch:
            self.adjust(link.slots, (want - link.prefetch) * link.slots.slots)
            link.prefetch = want

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
