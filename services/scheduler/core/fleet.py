"""Workers indexed by capability and free capacity (DESIGN §4).

Workers with the same kind, device model, precisions, categories and memory form one
device class; placement compares classes (a handful) rather than workers (thousands), and
finds a free member of a class in amortised O(1) through the class's free index.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from services.scheduler.core.model import Kind, WorkerSlots


@dataclass(frozen=True)
class Capability:
    kind: Kind
    device_model: str
    precisions: frozenset[int]
    categories: frozenset[str]
    memory_bytes: int
    gpu_memory_bytes: int

    @staticmethod
    def of(worker: WorkerSlots) -> Capability:
        return Capability(
            worker.kind,
            worker.device_model,
            worker.precisions,
            worker.categories,
            worker.memory_bytes,
            worker.gpu_memory_bytes,
        )


class DeviceClass:
    """Workers of one capability; those with a free slot are kept in an index."""

    def __init__(self, capability: Capability, representative: WorkerSlots) -> None:
        self.capability = capability
        self.representative = representative
        self.members: dict[str, WorkerSlots] = {}
        self.free: dict[str, WorkerSlots] = {}

    def __len__(self) -> int:
        return len(self.members)

    def __iter__(self) -> Iterator[WorkerSlots]:
        return iter(self.members.values())

    def refresh(self, worker: WorkerSlots) -> None:
        if worker.free_slots > 0 and not worker.draining:
            self.free[worker.worker_id] = worker
        else:
            self.free.pop(worker.worker_id, None)


class Fleet:
    """Every live worker, by device class; the service calls `changed` after each update."""

    def __init__(self) -> None:
        self.classes: dict[Capability, DeviceClass] = {}
        self._class_of: dict[str, DeviceClass] = {}
        self._counted: dict[str, int] = {}
        self.free_slots = 0
        # datablock id → workers holding it, so a task can go where its inputs are (S7)
        self.holders: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self._class_of)

    def workers(self) -> Iterator[WorkerSlots]:
        for cls in self.classes.values():
            yield from cls

    def add(self, worker: WorkerSlots) -> None:
        capability = Capability.of(worker)
        cls = self.classes.get(capability)
        if cls is None:
            cls = self.classes[capability] = DeviceClass(capability, worker)
        cls.members[worker.worker_id] = worker
        self._class_of[worker.worker_id] = cls
        self.changed(worker)
        self._index_cache(worker.worker_id, frozenset(), worker.cached)

    def remove(self, worker_id: str) -> WorkerSlots | None:
        cls = self._class_of.pop(worker_id, None)
        if cls is None:
            return None
        worker = cls.members.pop(worker_id)
        self._index_cache(worker_id, worker.cached, frozenset())
        self.free_slots -= self._counted.pop(worker_id, 0)
        cls.free.pop(worker_id, None)
        if not cls.members:
            del self.classes[cls.capability]
        elif cls.representative is worker:
            cls.representative = next(iter(cls.members.values()))
        return worker

    def changed(self, worker: WorkerSlots) -> None:
        """Re-index a worker after its free slots or draining flag changed."""
        cls = self._class_of.get(worker.worker_id)
        if cls is None:
            return
        cls.refresh(worker)
        counted = worker.free_slots if worker.worker_id in cls.free else 0
        self.free_slots += counted - self._counted.get(worker.worker_id, 0)
        self._counted[worker.worker_id] = counted

    def get(self, worker_id: str) -> WorkerSlots | None:
        cls = self._class_of.get(worker_id)
        return None if cls is None else cls.members.get(worker_id)

    def class_of(self, worker_id: str) -> DeviceClass | None:
        return self._class_of.get(worker_id)

    def cache_changed(self, worker: WorkerSlots, cached: frozenset[str]) -> None:
        """The worker now holds exactly `cached`."""
        if cached != worker.cached:
            self._index_cache(worker.worker_id, worker.cached, cached)
            worker.cached = cached

    def _index_cache(self, worker_id: str, old: frozenset[str], new: frozenset[str]) -> None:
        for block in old - new:
            holders = self.holders.get(block)
            if holders is not None:
                holders.discard(worker_id)
                if not holders:
                    del self.holders[block]
        for block in new - old:
            self.holders.setdefault(block, set()).add(worker_id)


class Cursor:
    """Walks one class's free workers during a cycle, skipping those the cycle filled."""

    def __init__(self, cls: DeviceClass) -> None:
        # The cycle is pure and synchronous: nothing re-indexes the class while it walks.
        self._it = iter(cls.free.values())
        self._current = next(self._it, None)

    def next_free(self, taken: Mapping[str, int]) -> WorkerSlots | None:
        while (
            self._current is not None
            and self._current.free_slots - taken.get(self._current.worker_id, 0) <= 0
        ):
            self._current = next(self._it, None)
        return self._current
