"""The timed workloads of `make gpu-check`: synthetic data, zoo inference, a saturating run.

Each throughput is items/s over `repeats` timed runs after one warm-up run (`Rate`: median,
min, max). The same code measures a GPU (`cuda:N`) or, behind `--device cpu`, the CPU.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from bench.gpu.results import InferenceResult, Rate, SyntheticResult, Utilisation
from bench.gpu.sampler import Sampler
from services.worker.handlers.context import HandlerContext
from services.worker.handlers.render import default_space, generate_assets, render, sample_variations
from services.worker.handlers.synthetic import create_synthetic_data
from services.worker.model import TaskInput
from services.worker.models import ZOO, build_model
from services.worker.models.precision import (
    cast_input,
    convert_model,
    ignore_quantization_warnings,
    run_model,
)

GPU_PRECISIONS = ("fp32", "bf16", "fp16")
CPU_PRECISIONS = ("fp32", "bf16", "int8")


def precisions_for(device: str) -> tuple[str, ...]:
    """The precisions a worker on `device` runs (fp16 on a GPU, int8 on the CPU)."""
    return GPU_PRECISIONS if device.startswith("cuda") else CPU_PRECISIONS


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: str, repeats: int, items: int, min_run_s: float = 0.0) -> Rate:
    """items/s of `fn` over `repeats` timed runs after one warm-up run. A run calls `fn` as
    many times as the warm-up says it takes to last `min_run_s`, so that one preemption of a
    short run on a shared host cannot decide a figure."""
    start = time.perf_counter()
    fn()
    _sync(device)
    once = time.perf_counter() - start
    calls = max(1, math.ceil(min_run_s / once)) if once > 0 else 1
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        _sync(device)
        rates.append(items * calls / (time.perf_counter() - start))
    return Rate.of(rates)


def measure_synthetic(
    device: str,
    *,
    items: int,
    batch: int,
    image_size: int,
    repeats: int,
    artifact_dir: Path,
    min_run_s: float = 0.0,
) -> list[SyntheticResult]:
    """The create handler end to end (render, labels, save) and the render kernel alone."""
    ctx = HandlerContext(device=device, artifact_dir=artifact_dir)
    counter = iter(range(10**9))

    def handler() -> object:
        n = next(counter)
        task = TaskInput(
            task_id=f"gpu-check-{n}",
            category="create_synthetic_data",
            item_count=items,
            batch_size=batch,
            parameters={"seed": n, "image_size": image_size},
            device=device,
        )
        result = create_synthetic_data(task, ctx)
        Path(result.artifact_path).unlink(missing_ok=True)
        return result

    gen = torch.Generator().manual_seed(0)
    assets = generate_assets(16, 32, gen)
    params = sample_variations(default_space(), batch, gen)
    pick = torch.randint(16, (batch,), generator=gen)
    images, masks = assets["images"][pick], assets["masks"][pick]

    def kernel() -> object:
        return render(images, masks, params, image_size, gen, device)

    handler_rate = timed(handler, device, repeats, items, min_run_s)
    kernel_rate = timed(kernel, device, repeats, batch, min_run_s)
    return [
        SyntheticResult(device, "handler", image_size, items, batch, handler_rate),
        SyntheticResult(device, "render", image_size, batch, batch, kernel_rate),
    ]


@contextmanager
def _quiet_quantization(precision: str) -> Iterator[None]:
    """int8 models repeat torch's quantisation deprecation warnings: filter exactly those."""
    with warnings.catch_warnings():
        if precision == "int8":
            ignore_quantization_warnings()
        yield


def measure_inference(
    name: str,
    precision: str,
    device: str,
    *,
    batch: int,
    repeats: int,
    iterations: int,
    min_run_s: float = 0.0,
) -> InferenceResult:
    """items/s of one zoo model at one precision (`iterations` batches per timed run), and its
    difference from the fp32 CPU model on the same inputs."""
    spec = ZOO[name]
    base = build_model(name)
    try:
        model = convert_model(base, precision, device)
    except Exception as exc:
        return InferenceResult(name, precision, batch, Rate(0, 0, 0), error=str(exc))
    x = cast_input(
        spec.make_input(batch, torch.Generator().manual_seed(0)), precision, device, spec.float_input
    )

    def forward() -> object:
        with torch.inference_mode(), _quiet_quantization(precision):
            for _ in range(iterations):
                out = model(x)
        return out

    rate = timed(forward, device, repeats, batch * iterations, min_run_s)
    probe = spec.make_input(256, torch.Generator().manual_seed(1))
    got = run_model(model, cast_input(probe, precision, device, spec.float_input))
    ref = run_model(base, probe)
    diff = float((got - ref).abs().max())
    agreement = float((got.argmax(1) == ref.argmax(1)).float().mean())
    tolerance = spec.tolerance.get(precision)
    within = tolerance is None or (
        diff <= tolerance.max_abs_diff and agreement >= tolerance.min_top1_agreement
    )
    return InferenceResult(
        name,
        precision,
        batch,
        rate,
        max_abs_diff=diff,
        top1_agreement=agreement,
        within_tolerance=within,
    )


def with_speedups(results: list[InferenceResult]) -> list[InferenceResult]:
    """Each result with its speedup over the same model's fp32 rate (0 when either is missing)."""
    fp32 = {r.model: r.items_per_s.median for r in results if r.precision == "fp32" and not r.error}
    out = []
    for r in results:
        base = fp32.get(r.model, 0.0)
        speedup = r.items_per_s.median / base if base > 0 and not r.error else 0.0
        out.append(dataclasses.replace(r, speedup_vs_fp32=speedup))
    return out


def saturate(device: str, seconds: float, sampler: Sampler, *, batch: int, precision: str) -> Utilisation:
    """Back-to-back forward passes of resnet_small while `sampler` samples how busy the device is."""
    spec = ZOO["resnet_small"]
    model = convert_model(build_model("resnet_small"), precision, device)
    x = cast_input(spec.make_input(batch, torch.Generator().manual_seed(0)), precision, device, True)
    workload = f"resnet_small {precision}, batch {batch}, back-to-back forward passes"
    with torch.inference_mode():
        model(x)
        _sync(device)
        ahead = 8 if device.startswith("cuda") else 1  # queue kernels ahead so a GPU never waits
        with sampler:
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                for _ in range(ahead):
                    model(x)
                _sync(device)
    return sampler.result(workload, seconds)
