"""What a simulation reads: a cluster, a workload of arrivals, a device speed table."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from services.scheduler.core.model import Kind, TaskDemand, WorkerSlots

# Priority classes of the classifier's default catalogue (services/classifier/rules.py), so
# simulated tasks rank as classified ones would; the simulator imports no service code.
PRIORITY_CLASS: Mapping[str, int] = {
    "generate_source_assets": 50,
    "ingest_source_assets": 50,
    "identify_variation_parameters": 50,
    "vary_variation_parameters": 60,
    "create_synthetic_data": 100,
    "inference": 70,
    "preprocess": 40,
    "training_step": 30,
    "noop": 0,
}


@dataclass(frozen=True)
class Arrival:
    """One task entering the system at `demand.enqueued_at` (virtual seconds).

    `work` is its execution time on the reference device (speed 1.0) for its category;
    on a worker it runs `work / speed(device_model, category)` seconds. `depends_on` names
    tasks that must finish first (the task waits, not queued, until they do)."""

    demand: TaskDemand
    work: float
    depends_on: tuple[str, ...] = ()

    @property
    def at(self) -> float:
        return self.demand.enqueued_at


@dataclass(frozen=True)
class SpeedTable:
    """Relative speed per device model (reference device = 1.0), with per-category tweaks."""

    devices: Mapping[str, float]
    per_category: Mapping[tuple[str, str], float] = field(default_factory=dict)
    default: float = 1.0

    def speed(self, device_model: str, category: str) -> float:
        found = self.per_category.get((device_model, category))
        if found is not None:
            return found
        return self.devices.get(device_model, self.default)

    def rows(self) -> list[tuple[str, str, float]]:
        """(device model, category or '*', speed) for reports."""
        out = [(d, "*", s) for d, s in sorted(self.devices.items())]
        out += [(d, c, s) for (d, c), s in sorted(self.per_category.items())]
        return out


@dataclass
class Cluster:
    """Worker templates; every run works on fresh copies."""

    workers: list[WorkerSlots]

    def fresh(self) -> list[WorkerSlots]:
        return [copy.copy(w) for w in self.workers]

    def capacity(self, speeds: SpeedTable, kind: Kind, category: str) -> float:
        """Reference-device slot-seconds per second the workers of `kind` offer."""
        return sum(w.slots * speeds.speed(w.device_model, category) for w in self.workers if w.kind is kind)


@dataclass
class Workload:
    """Arrivals sorted by time (a callable so that a run can iterate them afresh, lazily)."""

    name: str
    arrivals: Callable[[], Iterable[Arrival]]
    shares: Mapping[str, float] = field(default_factory=dict)
    # Mean reference work per (model, precision, batch bucket, category): the pre-warmed
    # profiles the Switchyard policy reads (as if the profile store had seen the trace).
    mean_work: Mapping[tuple[str, int, int, str], float] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Arrival]:
        return iter(self.arrivals())


@dataclass
class Scenario:
    """A cluster, a workload, a speed table, and the assumptions a report must state."""

    name: str
    cluster: Cluster
    workload: Workload
    speeds: SpeedTable
    assumptions: list[str] = field(default_factory=list)
    # Trace seconds per simulated second (1.0 = real time).
    compression: float = 1.0
    slo: str = "none"
