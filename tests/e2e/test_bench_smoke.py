"""A tiny `bench.compare` (Switchyard only, a few hundred tasks) so the harness cannot rot.

Not timed: it checks that the run completes, that the report is written, and that the
Switchyard path never needs Ray or Celery (the bench extra).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench import compare, report
from bench.baselines import switchyard_bench

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


@pytest.mark.timeout(300)  # a liveness bound, not a speed claim (speed lives in bench/)
def test_compare_runs_small_on_switchyard_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report, "REPORTS", tmp_path)
    with switchyard_bench.shared_mesh() as mesh:
        data = compare.run(
            systems=("switchyard",),
            throughput_tasks=300,
            sequential_tasks=20,
            repeats=1,
            mixed_rounds=1,
            profile_tasks=0,
            shared=mesh,
        )
    path = compare.write_report(data, "pytest tests/e2e/test_bench_smoke.py")

    figures = data["systems"]["switchyard"]
    assert "errors" not in figures
    assert len(figures["tasks_per_s"]) == 1 and figures["tasks_per_s"][0] > 0
    assert 0 < figures["p50_ms"][0] <= figures["p99_ms"][0]
    mixed = data["mixed"]
    assert mixed["failed"] == [] and mixed["tasks"] == 5 * len(switchyard_bench.TENANTS)
    assert set(mixed["device_share"]) == set(switchyard_bench.TENANTS)
    assert abs(sum(mixed["device_share"].values()) - 1.0) < 1e-6
    text = path.read_text()
    assert text.startswith("# Switchyard beside Ray and Celery") and "Reproduce: `pytest" in text
    assert "| switchyard |" in text and "## Mixed torch workload" in text
    assert (tmp_path / "compare.json").exists()
    assert not {"ray", "celery"} & set(sys.modules), "the Switchyard path imported a baseline framework"
