"""Host telemetry without psutil: CPU and memory from /proc, GPU from NVML when present."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from common.timeutil import utcnow
from services.worker.model import TelemetrySample

log = logging.getLogger(__name__)

PROC = Path("/proc")


def read_cpu_times(proc: Path = PROC) -> tuple[int, int]:
    """(idle, total) jiffies of all CPUs from /proc/stat; (0, 0) when unreadable."""
    try:
        first = (proc / "stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return 0, 0
    values = [int(v) for v in first[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return idle, sum(values)


def read_meminfo(proc: Path = PROC) -> tuple[int, int]:
    """(used, total) bytes from /proc/meminfo; (0, 0) when unreadable."""
    fields: dict[str, int] = {}
    try:
        for line in (proc / "meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts:
                fields[key] = int(parts[0]) * 1024
    except (OSError, ValueError):
        return 0, 0
    total = fields.get("MemTotal", 0)
    available = fields.get("MemAvailable", fields.get("MemFree", 0))
    return max(total - available, 0), total


class GpuProbe:
    """NVML readings for one GPU; turns itself off (once, with a log line) without NVML."""

    def __init__(self, index: int) -> None:
        self.index = index
        self._handle: Any = None
        self._nvml: Any = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            self._nvml = pynvml
        except Exception as exc:  # pynvml.NVMLError, or the library missing entirely
            log.info("NVML unavailable, GPU telemetry off", extra={"error": str(exc)})

    @property
    def available(self) -> bool:
        return self._handle is not None

    def read(self) -> tuple[float, int, int, float]:
        """(utilisation 0..1, memory used, memory total, power watts)."""
        if self._handle is None:
            return 0.0, 0, 0, 0.0
        nvml = self._nvml
        try:
            util = nvml.nvmlDeviceGetUtilizationRates(self._handle)
            mem = nvml.nvmlDeviceGetMemoryInfo(self._handle)
            power = nvml.nvmlDeviceGetPowerUsage(self._handle) / 1000.0
        except Exception as exc:
            log.warning("NVML read failed", extra={"error": str(exc)})
            return 0.0, 0, 0, 0.0
        return float(util.gpu) / 100.0, int(mem.used), int(mem.total), float(power)


class TelemetrySampler:
    """CPU utilisation since the previous sample, memory, and GPU readings if any."""

    def __init__(self, gpu_index: int | None, proc: Path = PROC) -> None:
        self._proc = proc
        self._gpu = GpuProbe(gpu_index) if gpu_index is not None else None
        self._lock = threading.Lock()
        self._last = read_cpu_times(proc)
        self._last_util = 0.0
        self._cached: tuple[float, TelemetrySample] | None = None

    def sample(self, max_age_s: float = 0.5) -> TelemetrySample:
        """A reading at most `max_age_s` old: per-task metrics reuse one, instead of
        reading /proc (and NVML) for every task."""
        cached = self._cached
        if cached is not None and time.monotonic() - cached[0] < max_age_s:
            return cached[1]
        fresh = self._read()
        self._cached = (time.monotonic(), fresh)
        return fresh

    def _read(self) -> TelemetrySample:
        used, total = read_meminfo(self._proc)
        gpu_util, gpu_used, gpu_total, power = self._gpu.read() if self._gpu else (0.0, 0, 0, 0.0)
        return TelemetrySample(
            cpu_utilization=self._cpu_utilization(),
            memory_used_bytes=used,
            memory_total_bytes=total,
            gpu_utilization=gpu_util,
            gpu_memory_used_bytes=gpu_used,
            gpu_memory_total_bytes=gpu_total,
            gpu_power_watts=power,
            observed_at=utcnow(),
        )

    def _cpu_utilization(self) -> float:
        idle, total = read_cpu_times(self._proc)
        with self._lock:
            last_idle, last_total = self._last
            if total - last_total <= 0:
                return self._last_util
            busy = 1.0 - (idle - last_idle) / (total - last_total)
            self._last = (idle, total)
            self._last_util = min(max(busy, 0.0), 1.0)
            return self._last_util
