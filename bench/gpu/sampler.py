"""Busy fractions sampled on a thread during a saturating run.

`NvmlSampler` reads NVML's GPU utilisation (the share of the last sample period in which a
kernel ran) and degrades to `available=False` without NVML. `CpuSampler` reads this
process's CPU time: busy = CPU seconds used / (wall seconds x the threads torch may use),
so 100% means every torch thread was computing all the time. Beside it, the whole host's
busy share from /proc/stat (all processes), which shows what else competed for the cores.
"""

from __future__ import annotations

import abc
import dataclasses
import threading
import time
from pathlib import Path
from typing import Any

from bench.gpu.results import Utilisation


def load_nvml() -> Any | None:
    """The pynvml module, initialised; None when the library or the driver is missing."""
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:
        return None


class Sampler(abc.ABC):
    """Calls `read()` every `interval_s` on a thread between `__enter__` and `__exit__`."""

    source = ""
    drop_first = False

    def __init__(self, interval_s: float = 0.05) -> None:
        self.interval_s = interval_s
        self.samples: list[float] = []
        self.note = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def available(self) -> bool:
        return True

    @abc.abstractmethod
    def read(self) -> float | None:
        """One busy fraction in [0, 1], or None when this sample has none."""

    def start(self) -> None:  # noqa: B027 (a hook; most samplers need nothing here)
        """Called on entry, before the first sample."""

    def __enter__(self) -> Sampler:
        if self.available:
            self.start()
            self._thread = threading.Thread(target=self._run, name="busy-sampler", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            value = self.read()
            if value is not None:
                self.samples.append(value)

    def result(self, workload: str, seconds: float) -> Utilisation:
        samples = self.samples
        if self.drop_first and len(samples) > 1:
            samples = samples[1:]
        return Utilisation(self.available, tuple(samples), self.note, workload, seconds, self.source)


class NvmlSampler(Sampler):
    """GPU utilisation from NVML."""

    source = "NVML"
    # NVML's counter covers its last sample period: the first reading includes idle time before.
    drop_first = True

    def __init__(self, index: int = 0, interval_s: float = 0.05, nvml: Any | None = None) -> None:
        super().__init__(interval_s)
        self._nvml = nvml
        self._handle: Any = None
        if nvml is None:
            self.note = "NVML unavailable (nvidia-ml-py or the driver library is missing)"
            return
        try:
            self._handle = nvml.nvmlDeviceGetHandleByIndex(index)
        except Exception as exc:
            self.note = f"NVML has no device {index}: {exc}"

    @property
    def available(self) -> bool:
        return self._handle is not None

    def read(self) -> float | None:
        if self._nvml is None or self._handle is None:
            return None
        try:
            return float(self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu) / 100.0
        except Exception as exc:
            self.note = f"NVML read failed: {exc}"
            return None


class CpuSampler(Sampler):
    """This process's CPU time over the capacity of `threads` cores."""

    source = "process CPU time"

    def __init__(self, threads: int, interval_s: float = 0.25, stat: Path = Path("/proc/stat")) -> None:
        super().__init__(interval_s)
        self.threads = max(threads, 1)
        self.host_samples: list[float] = []
        self._stat = stat
        self._last = (0.0, 0.0)
        self._last_host: tuple[int, int] | None = None

    def start(self) -> None:
        self._last = (time.perf_counter(), time.process_time())
        self._last_host = host_ticks(self._stat)

    def read(self) -> float | None:
        wall, cpu = time.perf_counter(), time.process_time()
        last_wall, last_cpu = self._last
        self._last = (wall, cpu)
        host = host_ticks(self._stat)
        if host is not None and self._last_host is not None and host[0] > self._last_host[0]:
            total, busy = host[0] - self._last_host[0], host[1] - self._last_host[1]
            self.host_samples.append(busy / total)
        self._last_host = host
        if wall <= last_wall:
            return None
        return (cpu - last_cpu) / ((wall - last_wall) * self.threads)

    def result(self, workload: str, seconds: float) -> Utilisation:
        base = super().result(workload, seconds)
        return dataclasses.replace(base, host_samples=tuple(self.host_samples))


def host_ticks(stat: Path) -> tuple[int, int] | None:
    """(all, busy) CPU ticks of the host since boot from /proc/stat; None where it is missing."""
    try:
        fields = stat.read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    if not fields or fields[0] != "cpu":
        return None
    ticks = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
    idle = ticks[3] + ticks[4] if len(ticks) > 4 else ticks[3]
    return sum(ticks), sum(ticks) - idle
