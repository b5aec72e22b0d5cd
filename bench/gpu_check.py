"""`make gpu-check`: the GPU worker's workloads measured on a real GPU (DESIGN §5, §9).

Runs on a lent GPU machine with its own python3 (torch, grpcio, protobuf, nvidia-ml-py)
as `python3 -m bench.gpu_check` from the repository root; nothing is installed. It
measures:

1. images/s of `create_synthetic_data` on the GPU and on the CPU (the handler as a slot
   runs it, saving its output, and the render kernel alone);
2. inference items/s per zoo model and precision (fp32, bf16, fp16), the speedup of
   bf16/fp16 over fp32, and whether each stays within the model's stated tolerance;
3. NVML utilisation sampled during a saturating run (goal: >= 90% busy);
4. a short run of the whole mesh with one GPU and one CPU worker: GPU_ONLY
   create_synthetic_data tasks must be placed on the GPU worker and its metrics must
   reach the profile store under the GPU's name. This part needs the project's wheels
   (sqlalchemy, aiosqlite, ...): see docs/gpu.md and bench/gpu_bootstrap.sh; without
   them it is reported as skipped, with the missing module named.

Writes bench/reports/gpu.md. Without a CUDA device it exits with status 2 and says so.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NO_GPU = "no CUDA device: run this on a GPU machine"

try:
    import torch

    from services.worker.handlers.context import HandlerContext
    from services.worker.handlers.render import generate_assets, render, sample_variations
    from services.worker.handlers.synthetic import create_synthetic_data
    from services.worker.model import TaskInput
    from services.worker.models import ZOO, build_model
    from services.worker.models.precision import cast_input, convert_model, run_model
except ModuleNotFoundError as exc:
    if exc.name != "torch":
        raise
    # A python3 without torch cannot have a usable GPU either.
    raise SystemExit(f"{NO_GPU} (no torch for {sys.executable})") from None

REPORT = Path(__file__).resolve().parent / "reports" / "gpu.md"
BUSY_GOAL = 0.90
PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class Rate:
    """A throughput as the median of repeated runs, with its min and max."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Rate:
        return cls(statistics.median(values), min(values), max(values))

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
    within_tolerance: bool = True
    error: str = ""


@dataclass(frozen=True)
class Utilisation:
    available: bool
    samples: tuple[float, ...] = ()
    note: str = ""
    workload: str = ""
    seconds: float = 0.0

    @property
    def busy(self) -> float:
        """The mean of the samples (NVML's 'percent of time a kernel was running')."""
        return statistics.fmean(self.samples) if self.samples else 0.0


@dataclass(frozen=True)
class MeshResult:
    ran: bool
    note: str = ""
    tasks: int = 0
    gpu_only: int = 0
    on_gpu: int = 0
    workers: dict[str, int] = field(default_factory=dict)
    states: dict[str, int] = field(default_factory=dict)
    # (device model, model, precision, category, count, items/s)
    profiles: tuple[tuple[str, str, str, str, int, float], ...] = ()
    gpu_profile_found: bool = False
    seconds: float = 0.0


@dataclass
class GpuCheck:
    device_name: str
    environment: dict[str, str]
    synthetic: list[SyntheticResult] = field(default_factory=list)
    inference: list[InferenceResult] = field(default_factory=list)
    utilisation: Utilisation = field(default_factory=lambda: Utilisation(available=False))
    mesh: MeshResult = field(default_factory=lambda: MeshResult(ran=False, note="not run"))


# --- NVML ------------------------------------------------------------------------------


def load_nvml() -> Any | None:
    """The pynvml module, initialised; None when the library or the driver is missing."""
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:
        return None


class NvmlSampler:
    """Samples GPU utilisation on a thread; degrades to `available=False` without NVML."""

    def __init__(self, index: int = 0, interval_s: float = 0.05, nvml: Any | None = None) -> None:
        self.interval_s = interval_s
        self.samples: list[float] = []
        self.note = ""
        self._nvml = nvml
        self._handle: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
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

    def __enter__(self) -> NvmlSampler:
        if self.available:
            self._thread = threading.Thread(target=self._run, name="nvml-sampler", daemon=True)
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
        # NVML's counter covers its last sample period: drop the first reading (idle before).
        samples = tuple(self.samples[1:]) if len(self.samples) > 1 else tuple(self.samples)
        return Utilisation(self.available, samples, self.note, workload, seconds)


# --- measurements ----------------------------------------------------------------------


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: str, repeats: int, items: int) -> Rate:
    """items/s of `fn` over `repeats` runs after one warm-up run."""
    fn()
    _sync(device)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        rates.append(items / (time.perf_counter() - start))
    return Rate.of(rates)


def measure_synthetic(
    device: str, *, items: int, batch: int, image_size: int, repeats: int, artifact_dir: Path
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
    from services.worker.handlers.render import default_space

    params = sample_variations(default_space(), batch, gen)
    pick = torch.randint(16, (batch,), generator=gen)
    images, masks = assets["images"][pick], assets["masks"][pick]

    def kernel() -> object:
        return render(images, masks, params, image_size, gen, device)

    return [
        SyntheticResult(device, "handler", image_size, items, batch, timed(handler, device, repeats, items)),
        SyntheticResult(device, "render", image_size, batch, batch, timed(kernel, device, repeats, batch)),
    ]


def measure_inference(
    name: str, precision: str, device: str, *, batch: int, repeats: int, iterations: int
) -> InferenceResult:
    """items/s of one zoo model at one precision (`iterations` batches per timed run)."""
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
        with torch.inference_mode():
            for _ in range(iterations):
                out = model(x)
        return out

    rate = timed(forward, device, repeats, batch * iterations)
    probe = spec.make_input(256, torch.Generator().manual_seed(1))
    got = run_model(model, cast_input(probe, precision, device, spec.float_input))
    ref = run_model(base, probe)
    diff = float((got - ref).abs().max())
    agreement = float((got.argmax(1) == ref.argmax(1)).float().mean())
    tolerance = spec.tolerance.get(precision)
    within = tolerance is None or (
        diff <= tolerance.max_abs_diff and agreement >= tolerance.min_top1_agreement
    )
    return InferenceResult(name, precision, batch, rate, max_abs_diff=diff, within_tolerance=within)


def with_speedups(results: list[InferenceResult]) -> list[InferenceResult]:
    """Each result with its speedup over the same model's fp32 rate."""
    fp32 = {r.model: r.items_per_s.median for r in results if r.precision == "fp32" and not r.error}
    out = []
    for r in results:
        base = fp32.get(r.model, 0.0)
        speedup = r.items_per_s.median / base if base > 0 and not r.error else 0.0
        out.append(
            InferenceResult(
                r.model,
                r.precision,
                r.batch,
                r.items_per_s,
                speedup,
                r.max_abs_diff,
                r.within_tolerance,
                r.error,
            )
        )
    return out


def saturate(device: str, seconds: float, sampler: NvmlSampler) -> Utilisation:
    """Keep the GPU busy with large bf16 batches of resnet_small while NVML is sampled."""
    spec = ZOO["resnet_small"]
    model = convert_model(build_model("resnet_small"), "bf16", device)
    x = cast_input(spec.make_input(4096, torch.Generator().manual_seed(0)), "bf16", device, True)
    workload = "resnet_small bf16, batch 4096, back-to-back forward passes"
    with torch.inference_mode():
        model(x)
        _sync(device)
        with sampler:
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                for _ in range(8):  # queue several kernels ahead so the GPU never waits
                    model(x)
                _sync(device)
    return sampler.result(workload, seconds)


# --- the mesh --------------------------------------------------------------------------


async def mesh_check(
    data_dir: Path, *, tasks: int, items: int, timeout_s: float, gpu_name: str, gpu_workers: int = 1
) -> MeshResult:
    """Start the mesh (1 GPU + 1 CPU worker), submit GPU_ONLY create tasks, check placement
    and that the GPU worker's metrics became profiles under the GPU's name."""
    try:
        from switchyard import Client
        from switchyard.mesh import Mesh, MeshOptions
    except ImportError as exc:
        return MeshResult(ran=False, note=f"skipped: {exc} (carry the wheels, see docs/gpu.md)")
    from common.channels import authed_channel
    from switchyard.v1 import types_pb2

    started = time.perf_counter()
    options = MeshOptions(
        base_port=0, gpu_workers=gpu_workers, cpu_workers=1, data_dir=data_dir, log_level="WARNING"
    )
    async with Mesh(options, echo=lambda line: print(f"  mesh: {line}", flush=True)) as mesh:
        token = next(iter(mesh.tokens.values()))
        async with Client(mesh.classifier_address, token) as client:
            specs = [
                types_pb2.TaskSpec(category="create_synthetic_data", item_count=items, batch_size=items)
                for _ in range(tasks)
            ]
            for i, spec in enumerate(specs):
                spec.parameters.update({"seed": i, "image_size": 64})
            submitted = await client.submit(specs)
            done = await client.wait(submitted.task_ids, timeout=timeout_s)
        workers: dict[str, int] = {}
        states: dict[str, int] = {}
        on_gpu = gpu_only = 0
        for task in done:
            workers[task.worker_id] = workers.get(task.worker_id, 0) + 1
            state = types_pb2.TaskState.Name(task.state)
            states[state] = states.get(state, 0) + 1
            gpu_only += int(task.eligibility == types_pb2.ELIGIBILITY_GPU_ONLY)
            on_gpu += int(task.worker_id.startswith("gpu-"))
        profiles = await _profiles(mesh.profile_store_address, mesh.internal_token, authed_channel, gpu_name)
    found = any(p[0] == gpu_name and p[3] == "create_synthetic_data" for p in profiles)
    return MeshResult(
        ran=True,
        tasks=len(done),
        gpu_only=gpu_only,
        on_gpu=on_gpu,
        workers=workers,
        states=states,
        profiles=tuple(profiles),
        gpu_profile_found=found,
        seconds=time.perf_counter() - started,
    )


async def _profiles(
    address: str, token: str, authed_channel: Any, gpu_name: str
) -> list[tuple[str, str, str, str, int, float]]:
    """Profiles of the GPU (polled briefly: metrics are shipped asynchronously)."""
    from switchyard.v1 import profile_store_pb2, profile_store_pb2_grpc, types_pb2

    rows: list[tuple[str, str, str, str, int, float]] = []
    async with authed_channel(address, token) as channel:
        stub = profile_store_pb2_grpc.ProfileStoreServiceStub(channel)
        for _ in range(60):
            reply = await stub.ListProfiles(profile_store_pb2.ListProfilesRequest(page_size=500))
            rows = [
                (
                    p.key.device_model,
                    p.key.model.name,
                    types_pb2.Precision.Name(p.key.precision),
                    p.key.category,
                    int(p.count),
                    float(p.items_per_second),
                )
                for p in reply.profiles
            ]
            if any(r[0] == gpu_name for r in rows):
                break
            await asyncio.sleep(0.5)
    return rows


# --- the report ------------------------------------------------------------------------


def render_report(check: GpuCheck) -> str:
    """bench/reports/gpu.md as text."""
    lines = [
        "# GPU check",
        "",
        f"Device: **{check.device_name}**. "
        + ", ".join(f"{k} {v}" for k, v in check.environment.items())
        + ". Every figure is the median of repeated runs with its min and max.",
        "",
        "## Synthetic data (create_synthetic_data)",
        "",
        "| device | what | image size | items per run | batch | images/s |",
        "|---|---|---|---|---|---|",
    ]
    for s in check.synthetic:
        lines.append(
            f"| {s.device} | {s.what} | {s.image_size} | {s.items} | {s.batch} | {s.images_per_s.text()} |"
        )
    lines += _synthetic_ratio(check.synthetic)
    lines += [
        "",
        "## Inference (zoo models)",
        "",
        "| model | precision | batch | items/s | speedup vs fp32 | max abs diff vs fp32 | within tolerance |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in check.inference:
        if r.error:
            lines.append(f"| {r.model} | {r.precision} | {r.batch} | — | — | — | not run: {r.error} |")
            continue
        lines.append(
            f"| {r.model} | {r.precision} | {r.batch} | {r.items_per_s.text()} | {r.speedup_vs_fp32:.2f}x "
            f"| {r.max_abs_diff:.4f} | {'yes' if r.within_tolerance else '**no**'} |"
        )
    lines += ["", "## Utilisation (NVML)", "", *_utilisation(check.utilisation)]
    lines += ["", "## The mesh with a GPU worker", "", *_mesh(check.mesh)]
    return "\n".join(lines) + "\n"


def _synthetic_ratio(results: list[SyntheticResult]) -> list[str]:
    out = []
    for what in ("handler", "render"):
        gpu = [s for s in results if s.what == what and s.device.startswith("cuda")]
        cpu = [s for s in results if s.what == what and s.device == "cpu"]
        if gpu and cpu and cpu[0].images_per_s.median > 0:
            ratio = gpu[0].images_per_s.median / cpu[0].images_per_s.median
            out.append(f"\nGPU over CPU ({what}): **{ratio:.1f}x**.")
    return out


def _utilisation(u: Utilisation) -> list[str]:
    if not u.available or not u.samples:
        return [f"Not measured: {u.note or 'no samples'}."]
    verdict = "meets" if u.busy >= BUSY_GOAL else "**misses**"
    return [
        f"Workload: {u.workload}, {u.seconds:.0f} s, {len(u.samples)} samples.",
        "",
        f"Mean busy {u.busy:.0%} (min {min(u.samples):.0%}, max {max(u.samples):.0%}): "
        f"{verdict} the goal of {BUSY_GOAL:.0%}.",
    ]


def _mesh(m: MeshResult) -> list[str]:
    if not m.ran:
        return [f"Not run: {m.note}."]
    placed = "all" if m.on_gpu == m.tasks else f"**only {m.on_gpu}**"
    lines = [
        f"{m.tasks} create_synthetic_data tasks ({m.gpu_only} classified GPU_ONLY) in {m.seconds:.0f} s "
        f"(mesh start included): {placed} of them ran on the GPU worker. "
        f"Workers: {_counts(m.workers)}; states: {_counts(m.states)}.",
        "",
        f"GPU profile in the profile store: {'yes' if m.gpu_profile_found else '**no**'}.",
        "",
        "| device model | model | precision | category | count | items/s |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {d} | {mo or '—'} | {p} | {c} | {n} | {ips:,.0f} |" for d, mo, p, c, n, ips in m.profiles]
    return lines


def _counts(values: dict[str, int]) -> str:
    return ", ".join(f"{k or '(none)'} {v}" for k, v in sorted(values.items())) or "none"


# --- main ------------------------------------------------------------------------------


def environment() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "CUDA": str(torch.version.cuda),
        "CPU threads": str(torch.get_num_threads()),
    }


def run_check(args: argparse.Namespace, device: str) -> GpuCheck:
    check = GpuCheck(torch.cuda.get_device_name(device), environment())
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        folder = Path(tmp)
        for dev, items in ((device, args.items), ("cpu", max(args.items // 8, 64))):
            print(f"synthetic data on {dev} ...", flush=True)
            check.synthetic += measure_synthetic(
                dev,
                items=items,
                batch=min(items, 1024),
                image_size=64,
                repeats=args.repeats,
                artifact_dir=folder,
            )
        results = []
        for name in sorted(ZOO):
            for precision in PRECISIONS:
                print(f"inference {name} {precision} ...", flush=True)
                results.append(
                    measure_inference(
                        name,
                        precision,
                        device,
                        batch=args.batch,
                        repeats=args.repeats,
                        iterations=args.iterations,
                    )
                )
        check.inference = with_speedups(results)
        print(f"saturating run ({args.saturate_s:g} s) ...", flush=True)
        index = torch.device(device).index or 0
        check.utilisation = saturate(device, args.saturate_s, NvmlSampler(index, nvml=load_nvml()))
        if args.skip_mesh:
            check.mesh = MeshResult(ran=False, note="skipped (--skip-mesh)")
        else:
            print("the mesh with a GPU worker ...", flush=True)
            check.mesh = asyncio.run(
                mesh_check(
                    folder / "mesh",
                    tasks=args.mesh_tasks,
                    items=256,
                    timeout_s=300,
                    gpu_name=check.device_name,
                )
            )
    return check


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python3 -m bench.gpu_check", description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--items", type=int, default=4096, help="images per create task on the GPU")
    parser.add_argument("--batch", type=int, default=1024, help="inference batch size")
    parser.add_argument("--iterations", type=int, default=20, help="inference batches per timed run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--saturate-s", type=float, default=20.0)
    parser.add_argument("--mesh-tasks", type=int, default=12)
    parser.add_argument("--skip-mesh", action="store_true")
    parser.add_argument("--out", type=Path, default=REPORT)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not torch.cuda.is_available() or torch.cuda.device_count() == 0:
        print(NO_GPU, file=sys.stderr)
        return 2
    os.environ.setdefault("SWITCHYARD_LOG_LEVEL", "WARNING")
    check = run_check(args, args.device)
    text = render_report(check)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
