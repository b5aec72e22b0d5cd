"""A worker's prefetch follows its measured run time, within the configured bounds."""

from __future__ import annotations

import pytest

from services.scheduler.core.model import Kind, WorkerSlots
from services.scheduler.workers import WorkerLink, WorkerRegistry
from switchyard.v1 import types_pb2


def registered(slots: int = 2, prefetch: int = 1) -> tuple[WorkerRegistry, WorkerLink]:
    worker = WorkerSlots("w-1", Kind.CPU, "Test CPU", slots=slots, free_slots=slots * (1 + prefetch))
    link = WorkerLink(worker, types_pb2.WorkerInfo(id="w-1"), prefetch=prefetch)
    registry = WorkerRegistry()
    registry.add(link)
    return registry, link


@pytest.mark.parametrize(
    ("run_s", "window_s", "prefetch"),
    [
        (0.001, 0.02, 8),  # 20 would fill the window: capped at 8
        (0.004, 0.02, 5),
        (0.5, 0.02, 1),  # long tasks keep the minimum
        (0.001, 0.0, 1),  # no window: the minimum
        (0.0, 0.02, 8),  # instant tasks: the cap
    ],
)
def test_prefetch_fills_the_window_within_bounds(run_s: float, window_s: float, prefetch: int) -> None:
    registry, link = registered()
    for _ in range(30):
        registry.observe_run(link, run_s, window_s, (1, 8))
    assert link.prefetch == prefetch
    assert link.slots.free_slots == 2 * (1 + prefetch)
    assert registry.fleet.free_slots == 2 * (1 + prefetch)


def test_shrinking_keeps_held_tasks_counted() -> None:
    registry, link = registered()
    registry.observe_run(link, 0.001, 0.02, (1, 8))
    registry.adjust(link.slots, -18)  # every slot and prefetched place taken
    assert link.slots.free_slots == 0
    for _ in range(30):
        registry.observe_run(link, 1.0, 0.02, (1, 8))
    assert link.prefetch == 1
    assert link.slots.free_slots == -14  # 14 more held than the smaller room: none placed
    assert registry.fleet.free_slots == 0
