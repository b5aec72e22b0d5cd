"""The pure scheduling core: priority factors, queues, placement, one cycle."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from services.scheduler.core.clock import ManualClock
from services.scheduler.core.cycle import CycleLimits, SchedulerView, plan_cycle
from services.scheduler.core.fleet import Fleet
from services.scheduler.core.model import (
    Group,
    Kind,
    ProfileEstimate,
    ProfileKey,
    QosClass,
    TaskDemand,
    WorkerSlots,
)
from services.scheduler.core.placement import Priors, batch_bucket, fits
from services.scheduler.core.priority import (
    PriorityWeights,
    factors,
    fair_share_factor,
    priority,
    usage_scores,
)
from services.scheduler.core.queues import GroupQueue

CORE = Path(__file__).resolve().parents[2] / "services" / "scheduler" / "core"


def demand(task_id: str, **kw) -> TaskDemand:
    base: dict[str, Any] = dict(
        task_id=task_id,
        tenant="acme",
        category="inference",
        group=Group.CPU_OR_GPU,
        priority_class=50,
        qos_class=QosClass.STANDARD,
        model="mlp",
        precision=1,
        batch_size=8,
        enqueued_at=1_700_000_000.0,
    )
    base.update(kw)
    return TaskDemand(**base)


def worker(worker_id: str, kind: Kind = Kind.CPU, free: int = 1, model: str = "cpu-x", **kw) -> WorkerSlots:
    return WorkerSlots(worker_id=worker_id, kind=kind, device_model=model, slots=free, free_slots=free, **kw)


class Profiles:
    def __init__(self, table: dict[ProfileKey, ProfileEstimate] | None = None) -> None:
        self.table = table or {}

    def estimate(self, key: ProfileKey) -> ProfileEstimate | None:
        return self.table.get(key)


def test_core_imports_no_io_modules():
    banned = {"grpc", "sqlalchemy", "psycopg", "alembic", "torch", "switchyard", "common"}
    for path in CORE.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in banned, f"{path.name} imports {name}"


@pytest.mark.parametrize(
    ("usage", "share", "expected"),
    [(0.0, 0.5, 1.0), (0.5, 0.5, 0.5), (1.0, 0.5, 0.25), (0.25, 0.5, 2**-0.5), (0.1, 0.0, 0.0)],
)
def test_fair_share_factor(usage, share, expected):
    assert fair_share_factor(usage, share) == pytest.approx(expected)


def test_usage_scores_relative_to_shares():
    scores = usage_scores({"a": 30.0, "b": 10.0}, {"a": 1.0, "b": 1.0})
    assert scores["a"] == pytest.approx(0.75 / 0.5)
    assert scores["b"] == pytest.approx(0.25 / 0.5)
    assert usage_scores({}, {"idle": 1.0})["idle"] == 0.0


def test_priority_prefers_create_synthetic_data_and_idle_tenants():
    weights = PriorityWeights()
    now = 1_700_000_000.0
    create = demand("c", category="create_synthetic_data", priority_class=100)
    infer = demand("i", priority_class=50)
    assert priority(create, now, 1.0, weights) > priority(infer, now, 1.0, weights)
    assert priority(infer, now, 1.0, weights) > priority(infer, now, 0.25, weights)
    names = [f.name for f in factors(infer, now, 0.5, weights)]
    assert names == ["category", "qos", "fair_share", "age"]
    assert all(0.0 <= f.value <= 1.0 for f in factors(infer, now + 10_000, 0.5, weights))


def test_deadline_raises_qos_factor_as_slack_shrinks():
    weights = PriorityWeights()
    now = 1_700_000_000.0
    relaxed = factors(demand("a", qos_class=QosClass.BATCH, deadline=now + 3600), now, 1, weights)[1].value
    urgent = factors(demand("b", qos_class=QosClass.BATCH, deadline=now + 5), now, 1, weights)[1].value
    assert urgent > relaxed >= 0.1


def test_group_queue_orders_removes_and_reprioritizes():
    q = GroupQueue()
    for tid, p in [("a", 1.0), ("b", 3.0), ("c", 2.0), ("d", 3.0)]:
        q.push(tid, p)
    assert [e.task_id for e in q.ordered()] == ["b", "d", "c", "a"]
    assert q.remove("d") and not q.remove("d")
    assert [e.task_id for e in q.ordered()] == ["b", "c", "a"]
    assert q.position("a") == 3 and len(q) == 3
    q.reprioritize(lambda tid: {"a": 9.0, "b": 1.0, "c": 5.0}[tid])
    assert [e.task_id for e in q.ordered()] == ["a", "c", "b"]


def test_ordered_walk_is_lazy_and_matches_sorted():
    q = GroupQueue()
    for i in range(500):
        q.push(f"t{i}", float((i * 7919) % 101))
    for i in range(0, 500, 3):
        q.remove(f"t{i}")
    walked = [e.task_id for e in q.ordered()]
    expected = sorted((e for e in q._live.values()), key=lambda e: (e.neg_priority, e.seq))
    assert walked == [e.task_id for e in expected]


@pytest.mark.parametrize(("size", "bucket"), [(0, 1), (1, 1), (2, 2), (3, 4), (8, 8), (9, 16)])
def test_batch_bucket(size, bucket):
    assert batch_bucket(size) == bucket


def test_fits_respects_group_category_precision_and_memory():
    cpu = worker("c", categories=frozenset({"inference"}), precisions=frozenset({1, 4}), memory_bytes=1000)
    gpu = worker("g", kind=Kind.GPU)
    assert fits(demand("t"), cpu) and fits(demand("t"), gpu)
    assert not fits(demand("t", group=Group.GPU_ONLY), cpu)
    assert not fits(demand("t", group=Group.CPU_ONLY), gpu)
    assert not fits(demand("t", category="preprocess"), cpu)
    assert not fits(demand("t", precision=3), cpu)
    assert not fits(demand("t", memory_bytes=2000), cpu)


def view_of(
    tasks: list[TaskDemand], workers: list[WorkerSlots], profiles: Profiles | None = None
) -> SchedulerView:
    queues = {g: GroupQueue() for g in Group}
    for t in tasks:
        queues[t.group].push(t.task_id, float(t.priority_class))
    fleet = Fleet()
    for w in workers:
        fleet.add(w)
    lookup = {t.task_id: t for t in tasks}
    return SchedulerView(queues, lookup.get, fleet, profiles or Profiles(), Priors())


def test_cycle_places_highest_priority_first_and_respects_slots():
    tasks = [
        demand("low", priority_class=10),
        demand("high", priority_class=90),
        demand("mid", priority_class=50),
    ]
    decisions = plan_cycle(view_of(tasks, [worker("w1", free=2)]), ManualClock())
    assert [p.task_id for p in decisions.placements] == ["high", "mid"]
    assert {p.worker_id for p in decisions.placements} == {"w1"}


def test_cycle_uses_profiles_to_pick_the_faster_device():
    key = lambda dev: ProfileKey(dev, "mlp", 1, 8, "inference")  # noqa: E731
    profiles = Profiles({key("cpu-x"): ProfileEstimate(2.0, 10), key("H100"): ProfileEstimate(0.1, 10)})
    workers = [worker("cpu", free=4), worker("gpu", kind=Kind.GPU, model="H100", free=1)]
    decisions = plan_cycle(view_of([demand("a"), demand("b")], workers, profiles), ManualClock())
    by_task = {p.task_id: p.worker_id for p in decisions.placements}
    # the GPU is faster for the first; once it is full the CPU path still runs the second
    assert sorted(by_task.values()) == ["cpu", "gpu"]
    assert decisions.placements[0].worker_id == "gpu"


def test_cycle_skips_tasks_without_an_eligible_worker():
    tasks = [demand("gpu-only", group=Group.GPU_ONLY, priority_class=90), demand("either", priority_class=10)]
    decisions = plan_cycle(view_of(tasks, [worker("cpu")]), ManualClock())
    assert [p.task_id for p in decisions.placements] == ["either"]


def test_cycle_expires_tasks_whose_deadline_passed_and_flags_predicted_misses():
    clock = ManualClock()
    tasks = [demand("late", deadline=clock.now() - 1), demand("tight", deadline=clock.now() + 0.01)]
    decisions = plan_cycle(view_of(tasks, [worker("w", free=2)]), clock, CycleLimits())
    assert [e.task_id for e in decisions.expiries] == ["late"]
    assert [(p.task_id, p.misses_deadline) for p in decisions.placements] == [("tight", True)]


def test_cold_profile_is_explored_on_ties():
    key = ProfileKey("cpu-a", "mlp", 1, 8, "inference")
    profiles = Profiles({key: ProfileEstimate(1.0, 5)})
    workers = [worker("a", model="cpu-a"), worker("b", model="cpu-b")]
    decisions = plan_cycle(view_of([demand("t")], workers, profiles), ManualClock())
    assert decisions.placements[0].worker_id == "b"


def test_cycle_respects_a_tenants_running_room():
    tasks = [demand(f"a{i}", tenant="acme", priority_class=90) for i in range(3)] + [
        demand("g", tenant="globex")
    ]
    view = view_of(tasks, [worker("w", free=4)])
    limited = SchedulerView(
        view.queues,
        view.task,
        view.fleet,
        view.estimator,
        view.priors,
        tenant_room=lambda t: 1 if t == "acme" else None,
    )
    placed = [p.task_id for p in plan_cycle(limited, ManualClock()).placements]
    assert sorted(placed) == ["a0", "g"]


def test_fleet_indexes_free_capacity_by_device_class():
    fleet = Fleet()
    a, b = worker("a", free=2), worker("b", free=1)
    c = worker("c", kind=Kind.GPU, model="H100", free=1)
    for w in (a, b, c):
        fleet.add(w)
    assert len(fleet.classes) == 2 and fleet.free_slots == 4
    a.free_slots = 0
    fleet.changed(a)
    cpu_class = next(cls for cls in fleet.classes.values() if cls.capability.kind is Kind.CPU)
    assert list(cpu_class.free) == ["b"] and fleet.free_slots == 2
    b.draining = True
    fleet.changed(b)
    assert not cpu_class.free and fleet.free_slots == 1
    fleet.remove("c")
    assert len(fleet.classes) == 1 and fleet.free_slots == 0


def test_many_workers_of_one_class_fill_every_slot_once():
    workers = [worker(f"w{i}", free=2) for i in range(50)]
    tasks = [demand(f"t{i}") for i in range(150)]
    decisions = plan_cycle(view_of(tasks, workers), ManualClock())
    per_worker: dict[str, int] = {}
    for p in decisions.placements:
        per_worker[p.worker_id] = per_worker.get(p.worker_id, 0) + 1
    assert len(decisions.placements) == 100 and set(per_worker.values()) == {2}


def test_a_task_goes_where_its_input_datablocks_are():
    holder = worker("holder", cached=frozenset({"blk-1"}))
    others = [worker(f"w{i}") for i in range(3)]
    task = demand("t", inputs=(("blk-1", 2_000_000_000),))
    decisions = plan_cycle(view_of([task], [*others, holder]), ManualClock())
    assert decisions.placements[0].worker_id == "holder"
    assert decisions.placements[0].predicted_seconds == pytest.approx(Priors().cpu_seconds)


def test_locality_does_not_beat_a_much_faster_device():
    key = ProfileKey("H100", "mlp", 1, 8, "inference")
    profiles = Profiles({key: ProfileEstimate(0.01, 10)})
    holder = worker("holder", cached=frozenset({"blk-1"}))
    gpu = worker("gpu", kind=Kind.GPU, model="H100")
    task = demand("t", inputs=(("blk-1", 1_000_000),))  # 5 ms to move at 200 MB/s
    decisions = plan_cycle(view_of([task], [holder, gpu], profiles), ManualClock())
    assert decisions.placements[0].worker_id == "gpu"


def test_fleet_tracks_datablock_holders():
    fleet = Fleet()
    a = worker("a", cached=frozenset({"x"}))
    fleet.add(a)
    assert fleet.holders == {"x": {"a"}}
    fleet.cache_changed(a, frozenset({"y"}))
    assert fleet.holders == {"y": {"a"}}
    fleet.remove("a")
    assert fleet.holders == {}


def test_a_draining_first_member_does_not_hide_its_class():
    draining = worker("first", draining=True)
    free = worker("second")
    decisions = plan_cycle(view_of([demand("t")], [draining, free]), ManualClock())
    assert [p.worker_id for p in decisions.placements] == ["second"]
