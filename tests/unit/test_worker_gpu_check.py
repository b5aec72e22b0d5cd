"""The parts of `make gpu-check` that need no GPU: refusal, report, NVML fallback, CPU timings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from bench import gpu_check
from bench.gpu_check import (
    GpuCheck,
    InferenceResult,
    MeshResult,
    NvmlSampler,
    Rate,
    SyntheticResult,
    Utilisation,
    measure_inference,
    measure_synthetic,
    render_report,
    with_speedups,
)


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_without_a_gpu_it_refuses_clearly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--out", str(tmp_path / "gpu.md")]) == 2
    assert "no CUDA device: run this on a GPU machine" in capsys.readouterr().err
    assert not (tmp_path / "gpu.md").exists()


class FakeNvml:
    def __init__(self, values: list[int], fail_handle: bool = False) -> None:
        self.values, self.fail_handle = values, fail_handle

    def nvmlDeviceGetHandleByIndex(self, index: int) -> str:
        if self.fail_handle:
            raise RuntimeError("NVML_ERROR_INVALID_ARGUMENT")
        return f"gpu{index}"

    def nvmlDeviceGetUtilizationRates(self, handle: str) -> Any:
        return SimpleNamespace(gpu=self.values.pop(0) if self.values else 100)


def test_sampler_without_nvml_reports_why() -> None:
    sampler = NvmlSampler(nvml=None)
    with sampler:
        pass
    result = sampler.result("w", 1.0)
    assert not result.available and result.samples == () and "NVML unavailable" in result.note
    assert "Not measured: NVML unavailable" in render_report(_check(utilisation=result))


def test_sampler_with_a_device_nvml_cannot_open() -> None:
    sampler = NvmlSampler(index=3, nvml=FakeNvml([], fail_handle=True))
    assert not sampler.available and "no device 3" in sampler.note and sampler.read() is None


def test_sampler_samples_on_a_thread_and_drops_the_first_reading() -> None:
    sampler = NvmlSampler(interval_s=0.005, nvml=FakeNvml([10, 95, 97]))
    with sampler:
        gpu_check.time.sleep(0.1)
    result = sampler.result("w", 0.1)
    assert result.available and len(result.samples) >= 2
    assert result.samples[:2] == (0.95, 0.97) and result.busy > 0.9


def _check(**kw: Any) -> GpuCheck:
    check = GpuCheck("NVIDIA H200", {"python": "3.12.3", "torch": "2.11.0"})
    for key, value in kw.items():
        setattr(check, key, value)
    return check


def test_report_shows_every_figure_and_verdict() -> None:
    inference = with_speedups(
        [
            InferenceResult("mlp", "fp32", 1024, Rate(1000, 900, 1100)),
            InferenceResult("mlp", "bf16", 1024, Rate(2500, 2400, 2600), max_abs_diff=0.002),
            InferenceResult("mlp", "fp16", 1024, Rate(0, 0, 0), error="fp16 needs a GPU"),
        ]
    )
    assert [r.speedup_vs_fp32 for r in inference] == [1.0, 2.5, 0.0]
    check = _check(
        synthetic=[
            SyntheticResult("cuda:0", "handler", 64, 4096, 1024, Rate(40000, 38000, 41000)),
            SyntheticResult("cpu", "handler", 64, 512, 512, Rate(2000, 1900, 2100)),
        ],
        inference=inference,
        utilisation=Utilisation(True, (0.95, 0.97, 0.93), workload="resnet", seconds=20),
        mesh=MeshResult(
            ran=True,
            tasks=12,
            gpu_only=12,
            on_gpu=12,
            workers={"gpu-1": 12},
            states={"TASK_STATE_SUCCEEDED": 12},
            profiles=(("NVIDIA H200", "", "PRECISION_FP32", "create_synthetic_data", 12, 30000.0),),
            gpu_profile_found=True,
            seconds=40,
        ),
    )
    text = render_report(check)
    assert text.startswith("# GPU check") and "**NVIDIA H200**" in text
    assert "| cuda:0 | handler | 64 | 4096 | 1024 | 40,000 (38,000 to 41,000) |" in text
    assert "GPU over CPU (handler): **20.0x**" in text
    assert "| mlp | bf16 | 1024 | 2,500 (2,400 to 2,600) | 2.50x | 0.0020 | yes |" in text
    assert "not run: fp16 needs a GPU" in text
    assert "Mean busy 95%" in text and "meets the goal of 90%" in text
    assert "all of them ran on the GPU worker" in text and "GPU profile in the profile store: yes" in text


def test_report_flags_misses() -> None:
    check = _check(
        utilisation=Utilisation(True, (0.5, 0.6)),
        mesh=MeshResult(ran=True, tasks=4, gpu_only=4, on_gpu=3, workers={"gpu-1": 3, "cpu-1": 1}),
    )
    text = render_report(check)
    assert "**misses** the goal" in text and "**only 3**" in text and "profile store: **no**" in text
    assert "Not run: skipped: No module named 'sqlalchemy'" in render_report(
        _check(mesh=MeshResult(ran=False, note="skipped: No module named 'sqlalchemy'"))
    )


def test_measurements_run_on_the_cpu(tmp_path: Path) -> None:
    fp32 = measure_inference("mlp", "fp32", "cpu", batch=8, repeats=2, iterations=2)
    assert fp32.items_per_s.median > 0 and fp32.max_abs_diff == 0 and fp32.within_tolerance
    bf16 = measure_inference("mlp", "bf16", "cpu", batch=8, repeats=2, iterations=2)
    assert bf16.within_tolerance and bf16.max_abs_diff > 0
    assert "GPU" in measure_inference("mlp", "fp16", "cpu", batch=8, repeats=1, iterations=1).error
    synthetic = measure_synthetic("cpu", items=8, batch=8, image_size=16, repeats=1, artifact_dir=tmp_path)
    assert [s.what for s in synthetic] == ["handler", "render"]
    assert all(s.images_per_s.median > 0 for s in synthetic)
    assert not list(tmp_path.glob("*-synthetic.pt"))  # the check cleans up after itself
