"""What device this worker runs on, asked of torch (never claiming a GPU torch denies)."""

from __future__ import annotations

import logging
from pathlib import Path

from services.worker.model import DeviceInfo
from services.worker.telemetry import read_meminfo

log = logging.getLogger(__name__)

CPU_PRECISIONS = ("fp32", "bf16", "int8")
GPU_PRECISIONS = ("fp32", "bf16", "fp16")


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    try:
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in {"model name", "Model", "Hardware"} and value.strip():
                return value.strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "unknown-cpu"


def cpu_device() -> DeviceInfo:
    _used, total = read_meminfo()
    return DeviceInfo(
        kind="cpu", device="cpu", device_model=cpu_model(), memory_bytes=total, precisions=CPU_PRECISIONS
    )


def detect_device(requested: str) -> DeviceInfo:
    """Resolve "cpu" / "cuda" / "cuda:N" to what is really there."""
    if not requested.startswith("cuda"):
        return cpu_device()
    import torch

    index = int(requested.partition(":")[2] or 0)
    if not torch.cuda.is_available():
        log.warning(
            "device %s requested but torch sees no GPU: running as a CPU worker",
            requested,
            extra={"requested_device": requested},
        )
        return cpu_device()
    if index >= torch.cuda.device_count():
        log.warning(
            "device %s requested but only %d GPU(s): running as a CPU worker",
            requested,
            torch.cuda.device_count(),
        )
        return cpu_device()
    props = torch.cuda.get_device_properties(index)
    _used, total = read_meminfo()
    return DeviceInfo(
        kind="gpu",
        device=f"cuda:{index}",
        device_model=str(torch.cuda.get_device_name(index)),
        memory_bytes=total,
        gpu_memory_bytes=int(props.total_memory),
        precisions=GPU_PRECISIONS,
    )


def gpu_index(device: DeviceInfo) -> int | None:
    return int(device.device.partition(":")[2] or 0) if device.kind == "gpu" else None
