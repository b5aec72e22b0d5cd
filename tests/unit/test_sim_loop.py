"""The simulator's event loop: simultaneous events, determinism, dependencies, policies."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from services.scheduler.core.model import Group, Kind, QosClass, TaskDemand, WorkerSlots
from services.scheduler.simulator import (
    POLICIES,
    Arrival,
    Cluster,
    RunConfig,
    Scenario,
    Simulation,
    SpeedTable,
    Workload,
    simulate,
)
from services.scheduler.simulator.accounting import FairShareBook, mean_work
from services.scheduler.simulator.metrics import backlogged_jain, figures, jain, offline_bound, percentile

SIM = Path(__file__).resolve().parents[2] / "services" / "scheduler" / "simulator"
SPEEDS = SpeedTable(devices={"fast": 2.0, "slow": 0.5, "cpu": 1.0})


def arrival(task_id: str, at: float = 0.0, work: float = 1.0, deps: tuple[str, ...] = (), **kw) -> Arrival:
    base = dict(
        task_id=task_id,
        tenant="acme",
        category="inference",
        group=Group.GPU_ONLY,
        priority_class=70,
        qos_class=QosClass.STANDARD,
        model="m",
        precision=0,
        batch_size=1,
        enqueued_at=at,
    )
    base.update(kw)
    return Arrival(TaskDemand(**base), work, deps)  # type: ignore[arg-type]


def gpu(worker_id: str, model: str = "fast", slots: int = 1) -> WorkerSlots:
    return WorkerSlots(worker_id, Kind.GPU, model, slots, slots)


def scenario(arrivals: list[Arrival], workers: list[WorkerSlots]) -> Scenario:
    workload = Workload("t", lambda: arrivals, mean_work=mean_work(arrivals))
    return Scenario("t", Cluster(workers), workload, SPEEDS)


def test_simulator_imports_no_grpc_or_database_code():
    banned = {"grpc", "sqlalchemy", "psycopg", "alembic", "aiosqlite", "torch", "switchyard", "common"}
    allowed_services = ("services.scheduler.core", "services.scheduler.simulator")
    for path in SIM.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in banned, f"{path.name} imports {name}"
                if name.startswith("services."):
                    assert name.startswith(allowed_services), f"{path.name} imports {name}"


def test_simultaneous_arrivals_keep_trace_order_and_completions_free_slots_first():
    # One slot; a, b, c arrive together: FIFO order a, b, c back to back.
    arrivals = [arrival(x, work=2.0) for x in "abc"]
    sim = Simulation(scenario(arrivals, [gpu("g")]), POLICIES["fifo"](0), RunConfig(keep_placements=True))
    sim.run()
    assert [(t, tid) for t, tid, _ in sim.placements] == [(0.0, "a"), (1.0, "b"), (2.0, "c")]
    # d arrives exactly when a finishes (t=1): the completion is applied first, then d
    # queues behind b (arrival order), and one cycle places b.
    arrivals = [arrival("a", work=2.0), arrival("b", work=2.0), arrival("d", at=1.0, work=2.0)]
    sim = Simulation(scenario(arrivals, [gpu("g")]), POLICIES["fifo"](0), RunConfig(keep_placements=True))
    sim.run()
    assert [tid for _, tid, _ in sim.placements] == ["a", "b", "d"]
    assert sim.placements[1][0] == 1.0


def test_priority_orders_simultaneous_arrivals_under_switchyard():
    arrivals = [
        arrival("batch", qos_class=QosClass.BATCH, priority_class=30),
        arrival("lc", qos_class=QosClass.LATENCY_CRITICAL),
    ]
    sim = Simulation(
        scenario(arrivals, [gpu("g")]), POLICIES["switchyard"](0), RunConfig(keep_placements=True)
    )
    sim.run()
    assert [tid for _, tid, _ in sim.placements] == ["lc", "batch"]


def test_switchyard_uses_the_fast_device_least_loaded_may_not():
    arrivals = [arrival(f"t{i}", at=float(i) * 10, work=4.0) for i in range(20)]
    s = scenario(arrivals, [gpu(f"slow-{i}", "slow", 1) for i in range(4)] + [gpu("fast-1", "fast", 1)])
    smart = figures("switchyard", simulate(s, POLICIES["switchyard"](0)), s)
    assert smart.jct_mean == pytest.approx(2.0)
    blind = [
        figures("least-loaded", simulate(s, POLICIES["least-loaded"](seed)), s).jct_mean for seed in range(4)
    ]
    assert max(blind) == pytest.approx(8.0)
    assert offline_bound(s).jct_mean == pytest.approx(2.0)


def test_dependencies_wait_for_their_parents():
    arrivals = [arrival("parent", work=2.0), arrival("child", deps=("parent",), work=2.0)]
    sim = Simulation(
        scenario(arrivals, [gpu("g", slots=2)]), POLICIES["switchyard"](0), RunConfig(keep_placements=True)
    )
    sim.run()
    assert [(t, tid) for t, tid, _ in sim.placements] == [(0.0, "parent"), (1.0, "child")]


def test_deadline_passed_expires_and_counts_as_slo_miss():
    arrivals = [arrival("long", work=20.0), arrival("lc", deadline=2.0, qos_class=QosClass.LATENCY_CRITICAL)]
    s = scenario(arrivals, [gpu("g")])
    f = figures("fifo", simulate(s, POLICIES["fifo"](0)), s)
    assert f.expired == 1 and f.slo_tasks == 1 and f.slo_attainment == 0.0


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_same_seed_same_run(policy):
    import random

    rng = random.Random(7)
    arrivals = []
    t = 0.0
    for i in range(300):
        t += rng.expovariate(2.0)
        arrivals.append(
            arrival(
                f"t{i}",
                at=round(t, 1),
                work=rng.uniform(0.5, 3),
                tenant=rng.choice("xyz"),
                model=rng.choice("mn"),
            )
        )
    workers = [gpu("f1"), gpu("f2", slots=2), gpu("s1", "slow"), gpu("s2", "slow", 3)]
    config = RunConfig(keep_placements=True, jitter=0.3, seed=3)
    runs = []
    for _ in range(2):
        sim = Simulation(scenario(arrivals, workers), POLICIES[policy](1), config)
        records = sim.run()
        runs.append((sim.placements, list(records.end)))
    assert runs[0] == runs[1]
    assert len(runs[0][0]) == 300


def test_fair_share_book_matches_decayed_usage():
    from services.scheduler.core.priority import decay, fair_share_factor, usage_scores

    book = FairShareBook(100.0, {"a": 2.0})
    usage: dict[str, float] = {}
    at: dict[str, float] = {}
    for now, tenant, secs in [(0, "a", 10.0), (50, "b", 30.0), (400, "a", 5.0), (60_000, "c", 1.0)]:
        book.charge(tenant, secs, float(now))
        usage = {t: decay(u, now - at[t], 100.0) for t, u in usage.items()}
        at = dict.fromkeys(usage, float(now))
        usage[tenant] = usage.get(tenant, 0.0) + secs
        at[tenant] = float(now)
        scores = usage_scores(usage, {"a": 2.0})
        for t in ("a", "b", "c"):
            assert book.factor(t) == pytest.approx(
                fair_share_factor(scores.get(t, 0.0), 1.0), rel=1e-9, abs=1e-12
            )


def test_metric_helpers():
    assert percentile([3.0, 1.0, 2.0, 4.0], 50) == 2.0
    assert percentile([1.0] * 99 + [100.0], 99) == 1.0
    assert jain([1.0, 1.0, 1.0]) == pytest.approx(1.0)
    assert jain([1.0, 0.0, 0.0, 0.0]) == pytest.approx(0.25)


def test_backlogged_jain_sees_a_dominating_tenant():
    # Heavy tenant h floods the queue first; light tenant l is backlogged behind it.
    arrivals = [arrival(f"h{i}", tenant="h") for i in range(40)]
    arrivals += [arrival(f"l{i}", at=0.5, tenant="l") for i in range(40)]
    arrivals.sort(key=lambda a: a.at)
    s = scenario(arrivals, [gpu("g", slots=2)])
    fifo, _ = backlogged_jain(simulate(s, POLICIES["fifo"](0)), 2.0, {})
    fair, _ = backlogged_jain(
        simulate(s, POLICIES["switchyard"](0), RunConfig(reprioritize_s=0.5, half_life_s=50)), 2.0, {}
    )
    assert fifo < 0.7 < fair


def test_fair_share_book_adds_the_in_flight_charge_of_running_tasks():
    from services.scheduler.core.priority import decay, fair_share_factor, in_flight_charge, usage_scores

    book = FairShareBook(100.0, dampening=4.0)
    book.charge("a", 30.0, 0.0)
    book.start("b", 10.0)
    book.start("b", 20.0)
    book.start("c", 25.0)
    now = 40.0
    usage = {
        "a": decay(30.0, now, 100.0),
        "b": in_flight_charge(10.0, now) + in_flight_charge(20.0, now),
        "c": in_flight_charge(25.0, now),
    }
    scores = usage_scores(usage, {})
    for t in "abc":
        assert book.usage_score(t, now) == pytest.approx(scores[t], rel=1e-9)
        assert book.factor(t, now) == pytest.approx(fair_share_factor(scores[t], 1.0, 4.0), rel=1e-9)
    # A task's end turns its in-flight charge into the same completed charge: U does not jump.
    before = {t: book.usage_score(t, 50.0) for t in "abc"}
    book.finish("b", 10.0, 50.0)
    assert {t: book.usage_score(t, 50.0) for t in "abc"} == pytest.approx(before, rel=1e-9)
    without = FairShareBook(100.0, in_flight=False)
    without.start("b", 10.0)
    assert without.usage_score("b", now) == 0.0


@pytest.mark.parametrize(
    "in_flight, reprioritize_s, first", [(True, 5.0, "b2"), (False, 5.0, "a2"), (True, 100.0, "a2")]
)
def test_in_flight_charge_orders_the_tenant_running_more_after_the_other(in_flight, reprioritize_s, first):
    # b0 runs 0-4; a1 and a1' run from 3 (long); b1 runs 4.5-11.5; a2 and b2 queue at 5, when
    # a has held 2 x 2 s and b 4 + 0.5 s, so a2 is pushed ahead. When b1 frees its slot at
    # 11.5, a has held 2 x 8.5 s and b 11 s: recomputed priorities put b2 first; stale ones
    # (not recomputed since 5) or usage without the in-flight charge keep a2 first.
    arrivals = [
        arrival("b0", tenant="b", work=4.0),
        arrival("a1", at=3.0, tenant="a", work=100.0),
        arrival("a1'", at=3.0, tenant="a", work=100.0),
        arrival("b1", at=4.5, tenant="b", work=7.0),
        arrival("a2", at=5.0, tenant="a"),
        arrival("b2", at=5.0, tenant="b"),
    ]
    workers = [gpu(f"g{i}", "cpu") for i in range(3)]
    config = RunConfig(
        keep_placements=True, half_life_s=1e9, in_flight=in_flight, reprioritize_s=reprioritize_s
    )
    sim = Simulation(scenario(arrivals, workers), POLICIES["switchyard"](0), config)
    sim.run()
    assert [tid for _, tid, _ in sim.placements][:4] == ["b0", "a1", "a1'", "b1"]
    assert [(t, tid) for t, tid, _ in sim.placements][4] == (11.5, first)


def test_priority_value_agrees_with_priority_exactly():
    import random

    from services.scheduler.core.priority import PriorityWeights, fixed_terms, priority, priority_value

    rng = random.Random(5)
    weights = PriorityWeights()
    for i in range(500):
        deadline = rng.choice([None, rng.uniform(0, 900)])
        task = arrival(
            f"t{i}",
            at=rng.uniform(0, 900),
            priority_class=rng.choice([0, 30, 70, 100, 150]),
            qos_class=rng.choice(list(QosClass)),
            deadline=deadline,
        ).demand
        now, fair = rng.uniform(0, 2000), rng.choice([0.0, 0.3, 1.0, 1.5])
        assert priority_value(task, now, fair, weights) == priority(task, now, fair, weights)
        fixed = fixed_terms(task, weights)
        assert (fixed is None) == (deadline is not None)
        if fixed is not None:
            assert priority_value(task, now, fair, weights, fixed) == priority(task, now, fair, weights)


def test_backlogged_jain_counts_device_time_per_share_of_tenants_backlogged_all_window():
    from services.scheduler.simulator.records import Records

    records = Records()
    # (tenant, ready, start, end): x is queued for all of [0, 10) and runs 6 s of it;
    # y is queued for all of it and runs 2 s; z is queued only from 4, so it is left out.
    for n, (tenant, ready, start, end) in enumerate(
        [
            ("x", 0, 0, 6),
            ("x", 0, 11, 12),
            ("y", 0, 8, 10),
            ("y", 0, 12, 13),
            ("z", 4, 4, 9),
            ("z", 4, 13, 14),
        ]
    ):
        records.add(
            arrival(f"t{n}", at=float(ready), tenant=tenant), float(ready), float(start), float(end), "g"
        )
    index, windows = backlogged_jain(records, 10.0, {"x": 2.0})
    x, y = 6.0 / 2.0, 2.0 / 1.0
    assert windows == 1 and index == pytest.approx(jain([x, y]))


def test_repeat_runs_each_seed_and_reports_median_and_range():
    from services.scheduler.simulator.run import repeat

    arrivals = [arrival(f"t{i}", at=float(i), work=3.0, tenant="xy"[i % 2]) for i in range(40)]
    s = scenario(arrivals, [gpu("f1"), gpu("s1", "slow")])
    r = repeat(lambda seed: s, [0, 1, 2], RunConfig(jitter=0.3), policies=["switchyard", "fifo"])
    assert r.seeds == [0, 1, 2] and r.policies == ["switchyard", "fifo"]
    means = sorted(f.jct_mean for f in r.of("fifo"))
    assert len(set(means)) == 3  # the seed sets the execution-time noise
    assert r.spread("fifo", lambda f: f.jct_mean) == (means[1], means[0], means[2])
