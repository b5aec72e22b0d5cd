"""Properties of the pure policy, over generated fleets and queues."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from services.scheduler.core.clock import ManualClock
from services.scheduler.core.cycle import SchedulerView, plan_cycle
from services.scheduler.core.fleet import Fleet
from services.scheduler.core.model import Group, Kind, QosClass, TaskDemand, WorkerSlots
from services.scheduler.core.placement import Priors, fits
from services.scheduler.core.priority import (
    PriorityWeights,
    decay,
    fair_share_factor,
    priority,
    usage_scores,
)
from services.scheduler.core.queues import GroupQueue

CATEGORIES = ["inference", "preprocess", "create_synthetic_data"]


class NoProfiles:
    def estimate(self, key):
        return None


workers_st = st.lists(
    st.builds(
        lambda i, kind, model, slots, free, cats, precs, mem, draining: WorkerSlots(
            worker_id=f"w{i}",
            kind=kind,
            device_model=model,
            slots=slots,
            free_slots=min(free, slots),
            categories=frozenset(cats),
            precisions=frozenset(precs),
            memory_bytes=mem,
            draining=draining,
        ),
        st.integers(0, 10**6),
        st.sampled_from([Kind.CPU, Kind.GPU]),
        st.sampled_from(["m1", "m2", "m3"]),
        st.integers(1, 4),
        st.integers(0, 4),
        st.sets(st.sampled_from(CATEGORIES), max_size=3),
        st.sets(st.sampled_from([1, 2, 3, 4]), max_size=4),
        st.sampled_from([0, 1 << 30, 4 << 30]),
        st.booleans(),
    ),
    max_size=25,
    unique_by=lambda w: w.worker_id,
)

tasks_st = st.lists(
    st.builds(
        lambda i, group, cat, prec, mem, pc: TaskDemand(
            task_id=f"t{i}",
            tenant=f"tenant{i % 3}",
            category=cat,
            group=group,
            priority_class=pc,
            qos_class=QosClass.STANDARD,
            model="mlp",
            precision=prec,
            batch_size=8,
            enqueued_at=0.0,
            memory_bytes=mem,
        ),
        st.integers(0, 10**6),
        st.sampled_from(list(Group)),
        st.sampled_from(CATEGORIES),
        st.sampled_from([0, 1, 2, 3, 4]),
        st.sampled_from([0, 1 << 29, 2 << 30]),
        st.integers(0, 100),
    ),
    max_size=80,
    unique_by=lambda t: t.task_id,
)


def view(tasks: list[TaskDemand], workers: list[WorkerSlots]) -> SchedulerView:
    queues = {g: GroupQueue() for g in Group}
    for t in tasks:
        queues[t.group].push(t.task_id, float(t.priority_class))
    fleet = Fleet()
    for w in workers:
        fleet.add(w)
    lookup = {t.task_id: t for t in tasks}
    return SchedulerView(queues, lookup.get, fleet, NoProfiles(), Priors())


@settings(max_examples=300, deadline=None)
@given(workers_st, tasks_st)
def test_never_an_ineligible_worker_never_more_than_the_free_slots(workers, tasks):
    decisions = plan_cycle(view(tasks, workers), ManualClock())
    by_id = {w.worker_id: w for w in workers}
    by_task = {t.task_id: t for t in tasks}
    used: dict[str, int] = {}
    placed = [p.task_id for p in decisions.placements]
    assert len(placed) == len(set(placed)), "a task placed twice"
    for p in decisions.placements:
        worker = by_id[p.worker_id]
        assert fits(by_task[p.task_id], worker), "placed on an ineligible worker"
        used[p.worker_id] = used.get(p.worker_id, 0) + 1
    for worker_id, n in used.items():
        assert n <= by_id[worker_id].free_slots and not by_id[worker_id].draining
    # nothing placeable was left behind while a fitting worker still had room
    for t in tasks:
        if t.task_id in set(placed):
            continue
        room = [
            w
            for w in workers
            if fits(t, w) and not w.draining and w.free_slots - used.get(w.worker_id, 0) > 0
        ]
        assert not room, f"{t.task_id} left queued while {room[0].worker_id} had a free slot"


@settings(max_examples=100, deadline=None)
@given(st.floats(0, 1e6), st.floats(0, 1e6), st.floats(0.1, 10), st.floats(0.1, 10))
def test_higher_usage_relative_to_share_waits_behind_lower(usage_a, usage_b, share_a, share_b):
    scores = usage_scores({"a": usage_a, "b": usage_b}, {"a": share_a, "b": share_b})
    weights = PriorityWeights()
    task = TaskDemand("x", "a", "inference", Group.CPU_ONLY, 50, QosClass.STANDARD, "mlp", 1, 8, 0.0)
    pa = priority(task, 0.0, fair_share_factor(scores["a"], 1.0), weights)
    pb = priority(task, 0.0, fair_share_factor(scores["b"], 1.0), weights)
    if scores["a"] > scores["b"] + 1e-9:
        assert pa < pb
    elif scores["b"] > scores["a"] + 1e-9:
        assert pb < pa


def run_two_tenants(seconds: float, task_s: float = 1.0, slots: int = 3, half_life: float = 60.0):
    """Both tenants keep 20 tasks queued; every `task_s` the cycle refills free slots."""
    clock = ManualClock(0.0)
    weights = PriorityWeights()
    usage = {"a": (0.0, 0.0), "b": (0.0, 0.0)}
    device_s = {"a": 0.0, "b": 0.0}
    fleet = Fleet()
    cpu = WorkerSlots("w", Kind.CPU, "cpu", slots=slots, free_slots=slots)
    fleet.add(cpu)
    tasks: dict[str, TaskDemand] = {}
    queue = GroupQueue()
    running: list[tuple[float, str]] = []
    counter = 0

    def fair(tenant: str) -> float:
        now = clock.now()
        decayed = {t: decay(u, now - at, half_life) for t, (u, at) in usage.items()}
        return fair_share_factor(usage_scores(decayed, {"a": 1.0, "b": 1.0})[tenant], 1.0)

    while clock.now() < seconds:
        for tenant in ("a", "b"):
            while sum(1 for t in tasks.values() if t.tenant == tenant and t.task_id in queue) < 20:
                counter += 1
                t = TaskDemand(
                    f"{tenant}{counter}",
                    tenant,
                    "noop",
                    Group.CPU_ONLY,
                    50,
                    QosClass.STANDARD,
                    "",
                    0,
                    1,
                    clock.now(),
                )
                tasks[t.task_id] = t
                queue.push(t.task_id, priority(t, clock.now(), fair(tenant), weights))
        queue.reprioritize(lambda tid: priority(tasks[tid], clock.now(), fair(tasks[tid].tenant), weights))
        v = SchedulerView({Group.CPU_ONLY: queue}, tasks.get, fleet, NoProfiles(), Priors())
        for p in plan_cycle(v, clock).placements:
            queue.remove(p.task_id)
            cpu.free_slots -= 1
            fleet.changed(cpu)
            running.append((clock.now() + task_s, p.task_id))
        clock.advance(task_s)
        for end, tid in [r for r in running if r[0] <= clock.now()]:
            running.remove((end, tid))
            tenant = tasks[tid].tenant
            u, at = usage[tenant]
            usage[tenant] = (decay(u, clock.now() - at, half_life) + task_s, clock.now())
            device_s[tenant] += task_s
            cpu.free_slots += 1
            fleet.changed(cpu)
    return device_s


def test_equal_shares_get_device_seconds_within_five_percent():
    device_s = run_two_tenants(seconds=600)
    total = device_s["a"] + device_s["b"]
    assert total > 0
    assert abs(device_s["a"] - device_s["b"]) / total <= 0.05, device_s
