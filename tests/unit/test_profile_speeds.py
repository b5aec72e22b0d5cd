"""Reference speeds per device model and usage in reference-device-seconds, by hand."""

from __future__ import annotations

import math

import pytest

from services.profile_store import usage
from services.profile_store.speeds import SpeedTable, WorkloadTime, choose_reference, speed_table


def wt(device: str, workload: str, seconds: float, count: int = 10) -> WorkloadTime:
    return WorkloadTime(device_model=device, workload=workload, seconds=seconds, count=count)


TIMES = [
    wt("a100", "w1", 2.0), wt("a100", "w2", 8.0), wt("a100", "w3", 1.0),
    wt("h100", "w1", 1.0, 5), wt("h100", "w2", 2.0, 5),   # 2x and 4x faster
    wt("t4", "w1", 4.0), wt("t4", "w4", 1.0),             # half as fast on w1; w4 not shared
    wt("v100", "w4", 3.0),                                # shares nothing with a100
    wt("l4", "w1", 0.5, 2),                               # too few samples
]  # fmt: skip


def test_speed_is_the_geometric_mean_of_time_ratios_against_the_reference() -> None:
    table = speed_table(TIMES, min_samples=3)
    # a100 has 30 samples, t4 20, h100 10: a100 is the most measured.
    assert table.reference == "a100"
    assert table.speeds["a100"] == 1.0
    # sqrt((2/1) * (8/2)) = sqrt(8)
    assert table.speeds["h100"] == pytest.approx(math.sqrt(8))
    assert table.speeds["t4"] == pytest.approx(0.5)
    assert "v100" not in table.speeds and table.speed("v100") == 1.0
    assert "l4" not in table.speeds
    assert table.shared == {"a100": 3, "h100": 2, "t4": 1}


def test_a_configured_reference_and_min_samples() -> None:
    table = speed_table(TIMES, reference="h100", min_samples=3)
    assert table.reference == "h100"
    assert table.speeds["a100"] == pytest.approx(1 / math.sqrt(8))
    # t4 against h100 on w1: 1.0 / 4.0
    assert table.speeds["t4"] == pytest.approx(0.25)
    # With min_samples=2, l4 joins: 2.0 / 0.5 against a100.
    assert speed_table(TIMES, min_samples=2).speeds["l4"] == pytest.approx(4.0)
    # A configured reference that never ran anything: nobody has a measured speed.
    assert speed_table(TIMES, reference="tpu").speeds == {"tpu": 1.0}


def test_reference_ties_go_to_the_smaller_name_and_empty_has_none() -> None:
    assert choose_reference([wt("b", "w", 1.0, 4), wt("a", "w", 2.0, 4)]) == "a"
    assert choose_reference([]) == ""
    assert speed_table([]) == SpeedTable()


def test_usage_is_charged_in_reference_device_seconds() -> None:
    table = speed_table(TIMES, min_samples=3)
    # 3 s on h100 = 3 * sqrt(8) a100-seconds; 3 s on t4 = 1.5; an unmeasured device counts 1:1.
    assert usage.usage_charge(3.0, "h100", table.speeds) == pytest.approx(3 * math.sqrt(8))
    assert usage.usage_charge(3.0, "t4", table.speeds) == pytest.approx(1.5)
    assert usage.usage_charge(3.0, "v100", table.speeds) == 3.0
    assert usage.usage_charge(-1.0, "h100", table.speeds) == 0.0


def test_decay_by_hand() -> None:
    # 10 units, half-life 60 s: after 30 s, 10 / sqrt(2); after 180 s, 10 / 8.
    assert usage.decay(10.0, 30, 60) == pytest.approx(10 / math.sqrt(2))
    assert usage.decay(10.0, 180, 60) == pytest.approx(1.25)
    assert usage.decay(10.0, 0, 60) == 10.0
