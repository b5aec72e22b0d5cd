"""The parts of `make gpu-check` that need no GPU: refusal, the CPU run, report, samplers."""

from __future__ import annotations

import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from bench import gpu_check
from bench.gpu import carry
from bench.gpu.measure import (
    measure_inference,
    measure_synthetic,
    precisions_for,
    timed,
    with_speedups,
)
from bench.gpu.report import CPU_HEADLINE, render_report
from bench.gpu.results import (
    GpuCheck,
    InferenceResult,
    MeshResult,
    Profile,
    Rate,
    SyntheticResult,
    Utilisation,
)
from bench.gpu.sampler import CpuSampler, NvmlSampler, host_ticks

TINY = ["--items", "8", "--batch", "4", "--iterations", "1", "--repeats", "3"]
TINY += ["--saturate-s", "0.3", "--saturate-batch", "2", "--min-run-s", "0", "--skip-mesh"]


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.mark.usefixtures("no_cuda")
def test_without_a_gpu_and_without_the_flag_it_refuses_clearly(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert gpu_check.main(["--out", str(tmp_path / "gpu.md")]) == 2
    err = capsys.readouterr().err
    assert "no CUDA device: run this on a GPU machine" in err and "DEVICE=cpu" in err
    assert not (tmp_path / "gpu.md").exists()


def test_an_unknown_device_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert gpu_check.main(["--device", "tpu", "--out", str(tmp_path / "x.md")]) == 2
    assert "unknown device 'tpu'" in capsys.readouterr().err


def test_fewer_than_three_repeats_is_refused() -> None:
    with pytest.raises(SystemExit):
        gpu_check.parse_args(["--device", "cpu", "--repeats", "2"])


def test_the_reproducing_command_is_a_make_line() -> None:
    assert gpu_check._command([], "cuda:0") == "make gpu-check"
    assert gpu_check._command(["--device", "cpu"], "cpu") == "make gpu-check DEVICE=cpu"
    assert (
        gpu_check._command(["--device=cuda:1", "--repeats", "7"], "cuda:1")
        == "make gpu-check DEVICE=cuda:1 GPU_CHECK_ARGS='--repeats 7'"
    )


def test_defaults_follow_the_device() -> None:
    gpu, cpu = gpu_check.parse_args([]), gpu_check.parse_args(["--device", "cpu"])
    assert gpu.out.name == "gpu.md" and (gpu.items, gpu.batch) == (4096, 1024)
    assert cpu.out.name == "gpu_cpu.md" and (cpu.items, cpu.batch) == (512, 128)
    assert gpu.threads is None and cpu.threads == 1  # a CPU worker's slot runs one torch thread
    assert precisions_for("cuda:0") == ("fp32", "bf16", "fp16")
    assert precisions_for("cpu") == ("fp32", "bf16", "int8")


@pytest.mark.usefixtures("no_cuda")
def test_the_cpu_run_writes_cpu_figures_and_says_so(tmp_path: Path) -> None:
    out = tmp_path / "gpu_cpu.md"
    assert gpu_check.main(["--device", "cpu", *TINY, "--out", str(out)]) == 0
    text = out.read_text()
    head = text.split("## Synthetic", 1)[0]
    assert text.startswith("# GPU check: CPU figures") and CPU_HEADLINE in head
    assert "Reproduce: `make gpu-check DEVICE=cpu GPU_CHECK_ARGS='--items 8 --batch 4" in head
    assert "(`cpu`)" in head and "CUDA" not in head
    assert "| cpu | handler | 64 | 8 | 8 | 3 |" in text and "| cpu | render |" in text
    assert "cuda" not in text.split("## Synthetic", 1)[1]
    for model in ("mlp", "resnet_small", "transformer_encoder"):
        for precision in ("fp32", "bf16", "int8"):
            assert f"| {model} | {precision} | 4 |" in text
    assert "| fp16 |" not in text and "| mlp | fp16" not in text
    assert "## Utilisation (process CPU time)" in text and "Mean busy" in text
    assert "Not run: skipped (--skip-mesh)." in text


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
        time.sleep(0.1)
    result = sampler.result("w", 0.1)
    assert result.available and len(result.samples) >= 2 and result.source == "NVML"
    assert result.samples[:2] == (0.95, 0.97) and result.busy > 0.9


def test_cpu_sampler_sees_this_process_compute() -> None:
    sampler = CpuSampler(threads=1, interval_s=0.02)
    with sampler:
        end = time.perf_counter() + 0.3
        while time.perf_counter() < end:
            pass
    result = sampler.result("spin", 0.3)
    assert result.available and result.samples and result.source == "process CPU time"
    assert max(result.samples) > 0  # one thread spinning (how much depends on who shares the cores)
    assert result.host_samples and all(0 <= s <= 1 for s in result.host_samples)


def test_host_ticks_reads_proc_stat(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3\n")
    assert host_ticks(stat) == (1000, 150)
    assert host_ticks(tmp_path / "missing") is None


def _check(device: str = "cuda:0", **kw: Any) -> GpuCheck:
    check = GpuCheck(device, "NVIDIA H200", {"python": "3.12.3", "torch": "2.11.0"}, "python3 -m x")
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
            SyntheticResult("cuda:0", "handler", 64, 4096, 1024, Rate(40000, 38000, 41000, 5)),
            SyntheticResult("cpu", "handler", 64, 512, 512, Rate(2000, 1900, 2100, 5)),
        ],
        inference=inference,
        utilisation=Utilisation(True, (0.95, 0.97, 0.93), workload="resnet", seconds=20),
        mesh=MeshResult(
            ran=True,
            device_name="NVIDIA H200",
            category_profile="default",
            tasks=12,
            on_target=12,
            eligibility={"ELIGIBILITY_GPU_ONLY": 12},
            workers={"gpu-1": 12},
            states={"TASK_STATE_SUCCEEDED": 12},
            profiles=(Profile("NVIDIA H200", "", "PRECISION_FP32", "create_synthetic_data", 12, 3e4),),
            seconds=40,
        ),
    )
    text = render_report(check)
    assert text.startswith("# GPU check\n") and "**NVIDIA H200**" in text and CPU_HEADLINE not in text
    assert "Reproduce: `python3 -m x`" in text
    assert "| cuda:0 | handler | 64 | 4096 | 1024 | 5 | 40,000 (38,000 to 41,000) |" in text
    assert "GPU over CPU (handler): **20.0x**" in text
    assert "| mlp | bf16 | 1024 | 2,500 (2,400 to 2,600) | 2.50x | 0.0020 | 100.0% | yes |" in text
    assert "not run: fp16 needs a GPU" in text
    assert "Mean busy 95%" in text and "meets the goal of 90%" in text
    assert "ELIGIBILITY_GPU_ONLY 12: all of them ran on a GPU worker" in text
    assert "GPU worker's profile (device model `NVIDIA H200`) in the profile store: yes" in text


def test_report_flags_misses() -> None:
    check = _check(
        utilisation=Utilisation(True, (0.5, 0.6)),
        mesh=MeshResult(ran=True, tasks=4, on_target=3, workers={"gpu-1": 3, "cpu-1": 1}),
    )
    text = render_report(check)
    assert "**misses** the goal" in text and "**only 3**" in text and "profile store: **no**" in text
    assert "Not run: skipped: No module named 'sqlalchemy'" in render_report(
        _check(mesh=MeshResult(ran=False, note="skipped: No module named 'sqlalchemy'"))
    )


def test_cpu_report_names_the_cpu_mesh_and_host_load() -> None:
    check = _check(
        "cpu",
        utilisation=Utilisation(True, (0.8, 0.9), source="process CPU time", host_samples=(1.0, 0.9)),
        mesh=MeshResult(
            ran=True,
            target="cpu",
            device_name="AMD EPYC",
            category_profile="local",
            tasks=2,
            on_target=2,
            eligibility={"ELIGIBILITY_CPU_OR_GPU": 2},
            profiles=(Profile("AMD EPYC", "", "PRECISION_FP32", "create_synthetic_data", 2, 900.0),),
        ),
    )
    text = render_report(check)
    assert text.startswith("# GPU check: CPU figures\n\n" + CPU_HEADLINE)
    assert "all processes together (/proc/stat): mean busy 95%" in text
    assert "## The mesh with CPU workers only" in text and "profile `local`" in text
    assert "all of them ran on a CPU worker" in text
    assert "CPU worker's profile (device model `AMD EPYC`) in the profile store: yes" in text


def test_a_timed_run_repeats_short_work_until_it_lasts() -> None:
    calls: list[float] = []

    def work() -> None:
        calls.append(time.perf_counter())
        time.sleep(0.002)

    rate = timed(work, "cpu", repeats=3, items=10, min_run_s=0.1)
    # the warm-up, then the same number of calls (more than one) in each of the 3 runs
    assert len(calls) > 1 + 3 and (len(calls) - 1) % 3 == 0 and rate.repeats == 3
    assert rate.median <= 10 / 0.002 and rate.low <= rate.median <= rate.high
    calls.clear()
    timed(work, "cpu", repeats=3, items=10)
    assert len(calls) == 4


def test_measurements_run_on_the_cpu(tmp_path: Path) -> None:
    fp32 = measure_inference("mlp", "fp32", "cpu", batch=8, repeats=3, iterations=2)
    assert fp32.items_per_s.median > 0 and fp32.items_per_s.repeats == 3
    assert fp32.max_abs_diff == 0 and fp32.top1_agreement == 1 and fp32.within_tolerance
    bf16 = measure_inference("mlp", "bf16", "cpu", batch=8, repeats=3, iterations=2)
    assert bf16.within_tolerance and bf16.max_abs_diff > 0
    int8 = measure_inference("mlp", "int8", "cpu", batch=8, repeats=3, iterations=2)
    assert int8.within_tolerance and int8.max_abs_diff > 0 and not int8.error
    assert "GPU" in measure_inference("mlp", "fp16", "cpu", batch=8, repeats=3, iterations=1).error
    synthetic = measure_synthetic("cpu", items=8, batch=8, image_size=16, repeats=3, artifact_dir=tmp_path)
    assert [s.what for s in synthetic] == ["handler", "render"]
    assert all(s.images_per_s.median > 0 for s in synthetic)
    assert not list(tmp_path.glob("*-synthetic.pt"))  # the check cleans up after itself


def test_carry_reads_the_pins_the_project_uses() -> None:
    pins = carry.read_requirements()
    assert {"sqlalchemy", "greenlet", "aiosqlite", "alembic", "mako", "grpcio-status"} <= set(pins)
    assert pins["grpcio"] == "1.85.1" and pins["protobuf"] == "7.36.2"
    assert not any(name.startswith("psycopg") for name in pins)  # the check's mesh runs on SQLite
    dev = Path(carry.REQUIREMENTS).parent.parent / "requirements-dev.txt"
    for line in dev.read_text().splitlines():
        name, _, version = line.partition("==")
        name = carry.canonical(name.split("[")[0])
        if name in pins and version:
            assert pins[name] == version.strip(), name


def test_carry_installs_only_what_is_missing_or_older(tmp_path: Path) -> None:
    for wheel in (
        "grpcio-1.85.1-cp312-cp312-manylinux2014_x86_64.whl",
        "protobuf-7.36.2-cp310-abi3-manylinux2014_x86_64.whl",
        "PyYAML-6.0.3-cp312-cp312-manylinux2014_x86_64.whl",
        "typing_extensions-4.16.0-py3-none-any.whl",
    ):
        (tmp_path / wheel).touch()
    pins = {"grpcio": "1.85.1", "protobuf": "7.36.2", "pyyaml": "6.0.3", "typing-extensions": "4.16.0"}
    system = {"grpcio": "1.71.0", "protobuf": "7.36.2", "typing-extensions": "4.17.0rc1"}
    choices = {c.name: c for c in carry.plan(tmp_path, pins, system.get)}
    assert [n for n, c in sorted(choices.items()) if c.install] == ["grpcio", "pyyaml"]
    assert choices["grpcio"].text() == "install grpcio 1.85.1 (has 1.71.0, older)"
    assert choices["pyyaml"].text() == "install pyyaml 6.0.3 (missing)"
    assert choices["protobuf"].text() == "keep    protobuf 7.36.2 (>= 7.36.2)"
    assert carry.version_key("2.11.0+cu130") == (2, 11, 0) and carry.version_key("4.17.0rc1") == (4, 17, 0)
    with pytest.raises(SystemExit, match=r"no wheel .* for: sqlalchemy"):
        carry.plan(tmp_path, {**pins, "sqlalchemy": "2.1.9"}, system.get)


def test_carry_unzips_wheels_where_there_is_no_pip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = tmp_path / "fakepkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("fakepkg/__init__.py", "VALUE = 1\n")
    calls: list[list[str]] = []

    def no_pip(command: list[str], **kw: Any) -> SimpleNamespace:
        calls.append(command)
        return SimpleNamespace(returncode=1)

    monkeypatch.setattr(carry.subprocess, "run", no_pip)
    keep = carry.Choice("other", tmp_path / "other.whl", "1.0", "2.0")
    carry.install([carry.Choice("fakepkg", wheel, "1.0", None), keep], tmp_path / "site")
    assert (tmp_path / "site" / "fakepkg" / "__init__.py").read_text() == "VALUE = 1\n"
    assert len(calls) == 1 and calls[0][-1] == "--version"
