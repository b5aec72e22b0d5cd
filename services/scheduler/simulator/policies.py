"""The policies a run compares, over the same event loop and the same queues and fleet.

* `switchyard` — the scheduler's own policy: multifactor priorities (core.priority, fair
  share from decayed usage) and `plan_cycle` placement on pre-warmed profiles.
* `fifo` — one FIFO per group (every priority equal, so arrival order decides), placed by
  the same `plan_cycle`: what ordering alone is worth.
* `least-loaded` — FIFO order; each task goes to the eligible worker with the lowest busy
  fraction (ties by a seeded random rank), ignoring profiles: heterogeneity-blind.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Protocol

from services.scheduler.core.clock import Clock
from services.scheduler.core.cycle import CycleLimits, SchedulerView, plan_cycle
from services.scheduler.core.fleet import Fleet
from services.scheduler.core.model import (
    KINDS_FOR_GROUP,
    CycleDecisions,
    Expiry,
    Group,
    Kind,
    Placement,
    TaskDemand,
    WorkerSlots,
)
from services.scheduler.core.placement import Estimator, Priors, fits
from services.scheduler.core.priority import PriorityWeights, priority_value
from services.scheduler.core.queues import GroupQueue
from services.scheduler.simulator.accounting import FairShareBook


class State(Protocol):
    """What a policy reads from the simulation (all owned and updated by the loop)."""

    @property
    def queues(self) -> Mapping[Group, GroupQueue]: ...
    @property
    def fleet(self) -> Fleet: ...
    @property
    def estimator(self) -> Estimator: ...
    @property
    def priors(self) -> Priors: ...
    @property
    def book(self) -> FairShareBook: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def limits(self) -> CycleLimits: ...

    def demand(self, task_id: str) -> TaskDemand | None: ...


class Policy(Protocol):
    name: str
    # Whether queued priorities change with time (the loop then reprioritizes periodically).
    reprioritizes: bool

    def bind(self, state: State) -> None: ...

    def priority(self, task: TaskDemand, now: float) -> float: ...

    def priority_of(self, now: float) -> Callable[[TaskDemand], float]: ...

    def decide(self) -> CycleDecisions: ...

    def worker_changed(self, worker: WorkerSlots) -> None: ...


def servable(state: State) -> dict[Group, GroupQueue]:
    """The non-empty queues whose group some free slot's kind can serve. Left in, a group no
    free slot can take costs a cycle up to `max_skips` look-ups at every event (GPU tasks
    queued while only CPU slots are free) and places nothing more."""
    free = {cls.capability.kind for cls in state.fleet.classes.values() if cls.free}
    return {g: q for g, q in state.queues.items() if q and not free.isdisjoint(KINDS_FOR_GROUP[g])}


class SwitchyardPolicy:
    name = "switchyard"
    reprioritizes = True

    def __init__(self, weights: PriorityWeights | None = None) -> None:
        self.weights = weights or PriorityWeights()
        self._state: State | None = None
        self._view: SchedulerView | None = None
        # Fair-share factors at one instant: a reprioritisation asks once per tenant.
        self._factors: dict[str, float] = {}
        self._factors_at = (math.nan, -1)

    def bind(self, state: State) -> None:
        self._state = state
        self._view = SchedulerView(
            queues=state.queues,
            task=state.demand,
            fleet=state.fleet,
            estimator=state.estimator,
            priors=state.priors,
        )

    def priority(self, task: TaskDemand, now: float) -> float:
        return self.priority_of(now)(task)

    def priority_of(self, now: float) -> Callable[[TaskDemand], float]:
        """Priorities at `now`, each tenant's fair-share factor asked of the book once."""
        assert self._state is not None
        book, weights = self._state.book, self.weights
        # Completions and starts at one instant leave U unchanged (in-flight time becomes
        # charged time), so factors change only with the clock or with S (a new tenant).
        at = (now, book.version)
        if at != self._factors_at:
            self._factors, self._factors_at = {}, at
        factors = self._factors

        def of(task: TaskDemand) -> float:
            fair = factors.get(task.tenant)
            if fair is None:
                fair = factors[task.tenant] = book.factor(task.tenant, now)
            return priority_value(task, now, fair, weights)

        return of

    def decide(self) -> CycleDecisions:
        assert self._state is not None and self._view is not None
        queues = servable(self._state)
        if not queues:
            return CycleDecisions([], [])
        return plan_cycle(replace(self._view, queues=queues), self._state.clock, self._state.limits)

    def worker_changed(self, worker: WorkerSlots) -> None:
        pass


class FifoPolicy(SwitchyardPolicy):
    name = "fifo"
    reprioritizes = False

    def priority_of(self, now: float) -> Callable[[TaskDemand], float]:
        return _zero


class LeastLoadedPolicy:
    name = "least-loaded"
    reprioritizes = False
    # How many ineligible workers (memory, category) one task looks past per kind.
    max_ineligible = 64

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._state: State | None = None
        self._heaps: dict[Kind, list[tuple[float, int, str]]] = {}
        self._workers: dict[str, WorkerSlots] = {}
        self._rank: dict[str, int] = {}

    def bind(self, state: State) -> None:
        self._state = state
        workers = sorted(state.fleet.workers(), key=lambda w: w.worker_id)
        order = list(range(len(workers)))
        random.Random(self.seed).shuffle(order)
        self._workers = {w.worker_id: w for w in workers}
        self._rank = {w.worker_id: r for w, r in zip(workers, order, strict=True)}
        self._heaps = {kind: [] for kind in Kind}
        for w in workers:
            self.worker_changed(w)

    def priority(self, task: TaskDemand, now: float) -> float:
        return 0.0

    def priority_of(self, now: float) -> Callable[[TaskDemand], float]:
        return _zero

    def worker_changed(self, worker: WorkerSlots) -> None:
        self._push(worker, 0)
        heap = self._heaps[worker.kind]
        if len(heap) > 4 * len(self._workers) + 1024:
            self._heaps[worker.kind] = []
            for w in self._workers.values():
                if w.kind is worker.kind:
                    self._push(w, 0)

    def _push(self, worker: WorkerSlots, taken: int) -> None:
        busy = worker.slots - worker.free_slots + taken
        if busy < worker.slots and not worker.draining:
            heapq.heappush(
                self._heaps[worker.kind],
                (busy / worker.slots, self._rank[worker.worker_id], worker.worker_id),
            )

    def _best(self, kind: Kind, task: TaskDemand, taken: Mapping[str, int]) -> tuple[float, int, str] | None:
        heap = self._heaps[kind]
        aside: list[tuple[float, int, str]] = []
        found = None
        while heap and len(aside) < self.max_ineligible:
            frac, _rank, wid = top = heap[0]
            w = self._workers[wid]
            busy = w.slots - w.free_slots + taken.get(wid, 0)
            if busy >= w.slots or frac != busy / w.slots or w.draining:
                heapq.heappop(heap)  # stale: a current entry was pushed when it changed
                continue
            if not fits(task, w):
                aside.append(heapq.heappop(heap))
                continue
            found = top
            break
        for entry in aside:
            heapq.heappush(heap, entry)
        return found

    def decide(self) -> CycleDecisions:
        assert self._state is not None
        state = self._state
        now = state.clock.now()
        free_total = state.fleet.free_slots
        taken: dict[str, int] = {}
        placements: list[Placement] = []
        expiries: list[Expiry] = []
        skips = 0
        merged = heapq.merge(*(q.ordered() for q in servable(state).values()))
        for entry in merged:
            if len(placements) >= min(state.limits.max_placements, free_total):
                break
            if skips > state.limits.max_skips:
                break
            task = state.demand(entry.task_id)
            if task is None:
                continue
            if task.deadline is not None and task.deadline < now:
                expiries.append(Expiry(task.task_id, "deadline passed before the task started"))
                continue
            tops = [t for k in sorted(KINDS_FOR_GROUP[task.group]) if (t := self._best(k, task, taken))]
            if not tops:
                skips += 1
                continue
            _frac, _rank, wid = min(tops)
            worker = self._workers[wid]
            taken[wid] = taken.get(wid, 0) + 1
            self._push(worker, taken[wid])
            placements.append(Placement(task.task_id, wid, predicted_seconds=0.0, predicted_completion=now))
        return CycleDecisions(placements, expiries)


def _zero(task: TaskDemand) -> float:
    return 0.0


POLICIES: dict[str, Callable[[int], Policy]] = {
    "switchyard": lambda seed: SwitchyardPolicy(),
    "fifo": lambda seed: FifoPolicy(),
    "least-loaded": lambda seed: LeastLoadedPolicy(seed),
}
