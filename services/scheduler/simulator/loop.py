"""The discrete-event loop: a virtual clock, a heap of events, the policy's cycles.

Events live in a heap keyed by (time, seq), so simultaneous events keep the order in
which they were scheduled; arrivals come lazily from the workload, in trace order. At one
instant the loop (1) applies every completion due (freeing slots, charging the tenant's
usage, releasing dependents), (2) admits every arrival due, (3) runs placement cycles until
one places nothing, and schedules each placed task's completion. The priority of queued
tasks is recomputed before a placement cycle whenever it is `reprioritize_s` virtual seconds
old or more: the service recomputes it every `reprioritize_interval_s`, and placing is the
only use of it, so recomputing lazily keeps the same bound on its age for less work.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from services.scheduler.core.clock import ManualClock
from services.scheduler.core.cycle import CycleLimits
from services.scheduler.core.fleet import Fleet
from services.scheduler.core.model import CycleDecisions, Group, TaskDemand, WorkerSlots
from services.scheduler.core.placement import Estimator, Priors
from services.scheduler.core.queues import GroupQueue
from services.scheduler.simulator.accounting import FairShareBook, SpeedProfiles, mean_work
from services.scheduler.simulator.model import Arrival, Scenario
from services.scheduler.simulator.policies import Policy
from services.scheduler.simulator.records import Records

COMPLETION = 0


@dataclass(frozen=True)
class RunConfig:
    priors: Priors = field(default_factory=Priors)
    limits: CycleLimits = field(default_factory=CycleLimits)
    half_life_s: float = 3600.0
    # Add running tasks' in-flight charge to their tenants' usage (DESIGN §4).
    in_flight: bool = True
    # Slurm's FairShareDampeningFactor (core.priority.fair_share_factor); 1 = classic.
    fair_share_dampening: float = 1.0
    reprioritize_s: float = 5.0
    seed: int = 0
    # Lognormal sigma applied to execution times (0: the trace's or the table's time exactly).
    jitter: float = 0.0
    # Keep (time, task id, worker id) of every placement (tests, agreement checks).
    keep_placements: bool = False


class Simulation:
    """One run of one policy over one scenario; `run()` returns the records."""

    def __init__(self, scenario: Scenario, policy: Policy, config: RunConfig | None = None) -> None:
        self.scenario = scenario
        self.policy = policy
        self.config = config or RunConfig()
        self.clock = ManualClock(0.0)
        self.queues: dict[Group, GroupQueue] = {g: GroupQueue() for g in Group}
        self.fleet = Fleet()
        for worker in scenario.cluster.fresh():
            self.fleet.add(worker)
        workload = scenario.workload
        self.estimator: Estimator = SpeedProfiles(scenario.speeds, workload.mean_work or mean_work(workload))
        self.priors = self.config.priors
        self.book = FairShareBook(
            self.config.half_life_s,
            workload.shares,
            in_flight=self.config.in_flight,
            dampening=self.config.fair_share_dampening,
        )
        self.limits = self.config.limits
        self.records = Records()
        self.placements: list[tuple[float, str, str]] = []
        self._tasks: dict[str, Arrival] = {}
        self._started: dict[str, float] = {}
        self._ready: dict[str, float] = {}
        self._waiting_on: dict[str, int] = {}
        self._children: dict[str, list[str]] = {}
        self._events: list[tuple[float, int, int, str, str]] = []
        self._seq = 0
        self._prioritized_at = -math.inf
        self._rng = random.Random(self.config.seed)
        self.cycles = 0
        policy.bind(self)

    # ---- the State protocol the policies read -----------------------------------------

    def demand(self, task_id: str) -> TaskDemand | None:
        arrival = self._tasks.get(task_id)
        return None if arrival is None else arrival.demand

    # ---- the loop -----------------------------------------------------------------------

    def run(self) -> Records:
        arrivals: Iterator[Arrival] = iter(self.scenario.workload)
        upcoming = next(arrivals, None)
        events = self._events
        while events or upcoming is not None:
            t = min(events[0][0] if events else math.inf, upcoming.at if upcoming else math.inf)
            self.clock.advance(t - self.clock.now())
            while events and events[0][0] == t:
                _, _, _kind, task_id, worker_id = heapq.heappop(events)
                self._complete(task_id, worker_id, t)
            while upcoming is not None and upcoming.at == t:
                self._arrive(upcoming, t)
                upcoming = next(arrivals, None)
            self._place(t)
        self.records.unfinished = sum(len(q) for q in self.queues.values()) + len(self._waiting_on)
        return self.records

    def _schedule(self, t: float, kind: int, task_id: str = "", worker_id: str = "") -> None:
        self._seq += 1
        heapq.heappush(self._events, (t, self._seq, kind, task_id, worker_id))

    def _arrive(self, arrival: Arrival, t: float) -> None:
        task_id = arrival.demand.task_id
        self._tasks[task_id] = arrival
        unmet = [d for d in arrival.depends_on if d in self._tasks]
        if unmet:
            self._waiting_on[task_id] = len(unmet)
            for dep in unmet:
                self._children.setdefault(dep, []).append(task_id)
        else:
            self._enqueue(arrival, t)

    def _enqueue(self, arrival: Arrival, t: float) -> None:
        task = arrival.demand
        self._ready[task.task_id] = t
        self.queues[task.group].push(task.task_id, self.policy.priority(task, self.clock.now()))

    def _reprioritize(self, t: float) -> None:
        self._prioritized_at = t
        of, tasks = self.policy.priority_of(self.clock.now()), self._tasks
        for queue in self.queues.values():
            if queue:
                queue.reprioritize(lambda tid: of(tasks[tid].demand))

    def _place(self, t: float) -> None:
        if (
            self.policy.reprioritizes
            and t - self._prioritized_at >= self.config.reprioritize_s
            and self.fleet.free_slots > 0
            and any(self.queues.values())
        ):
            self._reprioritize(t)
        while self.fleet.free_slots > 0 and any(self.queues.values()):
            decisions = self.policy.decide()
            self.cycles += 1
            self._apply(decisions, t)
            if not decisions.placements:
                return

    def _apply(self, decisions: CycleDecisions, t: float) -> None:
        for expiry in decisions.expiries:
            arrival = self._tasks.pop(expiry.task_id)
            self.queues[arrival.demand.group].remove(expiry.task_id)
            self.records.add(arrival, self._ready.pop(expiry.task_id), t, t, None)
            self._release(expiry.task_id, t, ok=False)
        speeds = self.scenario.speeds
        jitter = self.config.jitter
        touched: set[Group] = set()
        for placement in decisions.placements:
            arrival = self._tasks[placement.task_id]
            task = arrival.demand
            self.queues[task.group].remove(task.task_id)
            touched.add(task.group)
            worker = self._take(placement.worker_id, task.task_id)
            seconds = arrival.work / speeds.speed(worker.device_model, task.category)
            if jitter > 0:
                seconds *= self._rng.lognormvariate(-jitter * jitter / 2, jitter)
            self._started[task.task_id] = t
            self.book.start(task.tenant, t)
            self._schedule(t + seconds, COMPLETION, task.task_id, worker.worker_id)
            if self.config.keep_placements:
                self.placements.append((t, task.task_id, worker.worker_id))
        for group in touched:
            _prune_head(self.queues[group])

    def _take(self, worker_id: str, task_id: str) -> WorkerSlots:
        worker = self.fleet.get(worker_id)
        assert worker is not None and worker.free_slots > 0, f"placement on a full worker {worker_id}"
        worker.free_slots -= 1
        worker.running.add(task_id)
        self.fleet.changed(worker)
        self.policy.worker_changed(worker)
        return worker

    def _complete(self, task_id: str, worker_id: str, t: float) -> None:
        worker = self.fleet.get(worker_id)
        assert worker is not None
        worker.free_slots += 1
        worker.running.discard(task_id)
        self.fleet.changed(worker)
        self.policy.worker_changed(worker)
        arrival = self._tasks.pop(task_id)
        started = self._started.pop(task_id)
        # The service charges the wall time a task held its device (results.task_finished).
        self.book.finish(arrival.demand.tenant, started, self.clock.now())
        self.records.add(arrival, self._ready.pop(task_id), started, t, worker.device_model)
        self._release(task_id, t, ok=True)

    def _release(self, task_id: str, t: float, *, ok: bool) -> None:
        """Queue the dependents whose last dependency just finished; when it expired
        instead, they fail with it (the service's DEPENDENCY_FAILED), recorded as expired."""
        for child in self._children.pop(task_id, ()):
            if child not in self._waiting_on:
                continue
            if ok:
                self._waiting_on[child] -= 1
                if self._waiting_on[child] == 0:
                    del self._waiting_on[child]
                    self._enqueue(self._tasks[child], t)
            else:
                del self._waiting_on[child]
                self.records.add(self._tasks.pop(child), t, t, t, None)
                self._release(child, t, ok=False)


def _prune_head(queue: GroupQueue) -> None:
    """Drop removed entries from the top of the queue's heap.

    `GroupQueue.remove` is lazy and `ordered()` walks past removed entries, so the placed
    (best) tasks pile up at the top and every later cycle walks them again: O(placed) per
    cycle until the heap is compacted. The heap order is unchanged by popping them; this
    reaches into the queue's internals until `GroupQueue` does it itself (see docs)."""
    heap, live = queue._heap, queue._live
    while heap and live.get(heap[0].task_id) is not heap[0]:
        heapq.heappop(heap)


def simulate(scenario: Scenario, policy: Policy, config: RunConfig | None = None) -> Records:
    return Simulation(scenario, policy, config).run()


def first_placements(
    scenario: Scenario, policy: Policy, config: RunConfig | None = None
) -> Mapping[str, str]:
    """task id → worker id of the cycles at the first instant (every arrival at t=0, no
    completions yet): what a live scheduler's first cycles place on the same input."""
    sim = Simulation(scenario, policy, config)
    arrivals = list(scenario.workload)
    assert all(a.at == arrivals[0].at for a in arrivals), "every arrival must share one instant"
    t = arrivals[0].at if arrivals else 0.0
    sim.clock.advance(t - sim.clock.now())
    for arrival in arrivals:
        sim._arrive(arrival, t)
    out: dict[str, str] = {}
    while sim.fleet.free_slots > 0 and any(sim.queues.values()):
        decisions = sim.policy.decide()
        sim._apply(decisions, t)
        out.update((p.task_id, p.worker_id) for p in decisions.placements)
        if not decisions.placements:
            break
    return out
