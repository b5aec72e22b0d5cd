"""Reference speed per device model, derived from the profiles, pure (DESIGN §4).

Tenants are charged in reference-device-seconds so that a second on a fast device costs
more than a second on a slow one. The speed of a device model is measured against one
reference device model on the work both have run:

    speed(d) = geometric mean over shared workloads w of  time(ref, w) / time(d, w)

where a workload is the profile key without its device model (model, version, precision,
batch bucket, category) and time is the profile's mean execution time. The geometric mean
makes the figure independent of how long each workload is (a 10 ms and a 10 s workload
that both run twice as fast give 2.0), and speed(ref) = 1.

Choice of the reference: a configured device model, else the most-measured one (the
largest total sample count; ties go to the smaller name). The most-measured device has
the most workloads to share with the others, so most devices get a measured speed, and on
a fleet that does not change much it stays the same. Charges already made are not
rescaled when the reference or the speeds change; configure `reference_device` for units
that never move.

A device model that shares no workload with the reference (with enough samples on both
sides) has no measured speed and is charged at 1.0, as if it were the reference.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# A profile needs this many samples before its mean takes part in a speed.
DEFAULT_MIN_SAMPLES = 3


@dataclass(frozen=True, kw_only=True)
class WorkloadTime:
    """One profile as the speed table sees it."""

    device_model: str
    workload: str
    seconds: float
    count: int


@dataclass(frozen=True, kw_only=True)
class SpeedTable:
    """`speeds[d]` = how many reference seconds one second on device model d is worth."""

    reference: str = ""
    speeds: Mapping[str, float] = field(default_factory=dict)
    # Shared workloads each speed was measured on.
    shared: Mapping[str, int] = field(default_factory=dict)

    def speed(self, device_model: str) -> float:
        return self.speeds.get(device_model, 1.0)


def choose_reference(times: Iterable[WorkloadTime], configured: str = "") -> str:
    """The configured device model, else the one with the most samples ("" when none)."""
    if configured:
        return configured
    counts: dict[str, int] = defaultdict(int)
    for t in times:
        counts[t.device_model] += t.count
    if not counts:
        return ""
    return min(counts, key=lambda d: (-counts[d], d))


def speed_table(
    times: Iterable[WorkloadTime], *, reference: str = "", min_samples: int = DEFAULT_MIN_SAMPLES
) -> SpeedTable:
    """Every device model's speed relative to the reference (see the module docstring)."""
    times = list(times)
    ref = choose_reference(times, reference)
    usable = [t for t in times if t.count >= min_samples and t.seconds > 0 and math.isfinite(t.seconds)]
    by_device: dict[str, dict[str, float]] = defaultdict(dict)
    for t in usable:
        by_device[t.device_model][t.workload] = t.seconds
    ref_times = by_device.get(ref, {})
    speeds: dict[str, float] = {ref: 1.0} if ref else {}
    shared: dict[str, int] = {ref: len(ref_times)} if ref else {}
    for device, workloads in sorted(by_device.items()):
        common = sorted(set(workloads) & set(ref_times))
        if device == ref or not common:
            continue
        log_sum = sum(math.log(ref_times[w] / workloads[w]) for w in common)
        speeds[device] = math.exp(log_sum / len(common))
        shared[device] = len(common)
    return SpeedTable(reference=ref, speeds=speeds, shared=shared)
