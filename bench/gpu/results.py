"""The figures of `make gpu-check`: each throughput a median of repeats with its min and max."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Rate:
    """A throughput as the median of repeated runs, with its min and max."""

    median: float
    low: float
    high: float
    repeats: int = 0

    @classmethod
    def of(cls, values: Sequence[float]) -> Rate:
        return cls(statistics.median(values), min(values), max(values), len(values))

    def text(self) -> str:
        return f"{self.median:,.0f} ({self.low:,.0f} to {self.high:,.0f})"


@dataclass(frozen=True)
class SyntheticResult:
    device: str
    what: str  # "handler" or "render"
    image_size: int
    items: int
    batch: int
    images_per_s: Rate


@dataclass(frozen=True)
class InferenceResult:
    model: str
    precision: str
    batch: int
    items_per_s: Rate
    speedup_vs_fp32: float = 1.0
    max_abs_diff: float = 0.0
    top1_agreement: float = 1.0
    within_tolerance: bool = True
    error: str = ""


@dataclass(frozen=True)
class Utilisation:
    """Busy fractions sampled during a saturating run; `source` says what was sampled."""

    available: bool
    samples: tuple[float, ...] = ()
    note: str = ""
    workload: str = ""
    seconds: float = 0.0
    source: str = "NVML"
    # The CPU sampler's whole-host busy share (all processes), beside this process's.
    host_samples: tuple[float, ...] = ()

    @property
    def busy(self) -> float:
        """The mean of the samples."""
        return statistics.fmean(self.samples) if self.samples else 0.0


@dataclass(frozen=True)
class Profile:
    """One row of the profile store, as ListProfiles returns it."""

    device_model: str
    model: str
    precision: str
    category: str
    count: int
    items_per_s: float


@dataclass(frozen=True)
class MeshResult:
    """A short run of the whole mesh: where the tasks ran and what the profile store holds.

    `target` is the kind of worker the tasks must run on ("gpu" or "cpu") and
    `device_name` the device model its metrics must appear under."""

    ran: bool
    note: str = ""
    target: str = "gpu"
    device_name: str = ""
    category_profile: str = ""
    tasks: int = 0
    on_target: int = 0
    eligibility: dict[str, int] = field(default_factory=dict)
    workers: dict[str, int] = field(default_factory=dict)
    states: dict[str, int] = field(default_factory=dict)
    profiles: tuple[Profile, ...] = ()
    seconds: float = 0.0

    @property
    def profile_found(self) -> bool:
        return any(
            p.device_model == self.device_name and p.category == "create_synthetic_data"
            for p in self.profiles
        )


@dataclass
class GpuCheck:
    """Everything one run measured; `device` is "cpu" when the figures are CPU figures."""

    device: str
    device_name: str
    environment: dict[str, str]
    command: str = ""
    synthetic: list[SyntheticResult] = field(default_factory=list)
    inference: list[InferenceResult] = field(default_factory=list)
    utilisation: Utilisation = field(default_factory=lambda: Utilisation(available=False))
    mesh: MeshResult = field(default_factory=lambda: MeshResult(ran=False, note="not run"))

    @property
    def on_cpu(self) -> bool:
        return not self.device.startswith("cuda")
