"""`make gpu-check`: the GPU worker's workloads measured on a real GPU (DESIGN §5, §9).

Runs on a lent GPU machine with its own python3 (torch, grpcio, protobuf, nvidia-ml-py)
as `python3 -m bench.gpu_check` from the repository root. It measures:

1. images/s of `create_synthetic_data` on the GPU and on the CPU (the handler as a slot
   runs it, saving its output, and the render kernel alone);
2. inference items/s per zoo model and precision (fp32, bf16, fp16), the speedup over
   fp32, the difference from fp32 and whether it stays within the model's tolerance;
3. NVML utilisation sampled during a saturating run (goal: >= 90% busy);
4. a short run of the whole mesh with one GPU and one CPU worker: GPU_ONLY
   create_synthetic_data tasks must be placed on the GPU worker and its metrics must
   reach the profile store under the GPU's name. This part needs the project's wheels
   (sqlalchemy, aiosqlite, ...): see docs/gpu.md and bench/gpu_bootstrap.sh; without
   them it is reported as skipped, with the missing module named.

Writes bench/reports/gpu.md. Without a CUDA device it exits with status 2 and says so.
`--device cpu` measures the same on the CPU instead (precisions fp32, bf16, int8; the
process's CPU time instead of NVML; a mesh of CPU workers) and writes
bench/reports/gpu_cpu.md, headed by the statement that these are CPU figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shlex
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

NO_GPU = "no CUDA device: run this on a GPU machine"
CPU_HINT = "for CPU figures instead, ask for them: make gpu-check DEVICE=cpu (--device cpu)"

try:
    import torch

    from bench.gpu.measure import (
        measure_inference,
        measure_synthetic,
        precisions_for,
        saturate,
        with_speedups,
    )
    from bench.gpu.mesh_run import mesh_check
    from bench.gpu.report import render_report
    from bench.gpu.results import GpuCheck, InferenceResult, MeshResult
    from bench.gpu.sampler import CpuSampler, NvmlSampler, Sampler, load_nvml
    from services.worker.device import cpu_model
    from services.worker.models import ZOO
except ModuleNotFoundError as exc:
    if exc.name != "torch":
        raise
    # A python3 without torch can measure neither a GPU nor the CPU.
    print(f"{NO_GPU}: no torch for {sys.executable}", file=sys.stderr)
    sys.exit(2)

REPORTS = Path(__file__).resolve().parent / "reports"
GPU_REPORT = REPORTS / "gpu.md"
CPU_REPORT = REPORTS / "gpu_cpu.md"


def environment(device: str, min_run_s: float) -> dict[str, str]:
    env = {"python": platform.python_version(), "torch": torch.__version__}
    if device.startswith("cuda"):
        env["CUDA"] = str(torch.version.cuda)
    env["CPU threads"] = str(torch.get_num_threads())
    env["CPUs"] = str(os.cpu_count())
    env["shortest timed run"] = f"{min_run_s:g} s"
    if hasattr(os, "getloadavg"):
        env["load average at start"] = f"{os.getloadavg()[0]:.1f}"
    return env


def _inference(args: argparse.Namespace, device: str) -> list[InferenceResult]:
    results = []
    for name in sorted(ZOO):
        for precision in precisions_for(device):
            print(f"inference {name} {precision} ...", flush=True)
            results.append(
                measure_inference(
                    name,
                    precision,
                    device,
                    batch=args.batch,
                    repeats=args.repeats,
                    iterations=args.iterations,
                    min_run_s=args.min_run_s,
                )
            )
    return with_speedups(results)


def _saturation(args: argparse.Namespace, device: str) -> tuple[Sampler, int, str]:
    """The sampler, batch and precision of the saturating run."""
    if device.startswith("cuda"):
        return NvmlSampler(torch.device(device).index or 0, nvml=load_nvml()), 4096, "bf16"
    return CpuSampler(torch.get_num_threads()), args.saturate_batch, "fp32"


def run_check(args: argparse.Namespace, device: str, command: str = "") -> GpuCheck:
    on_gpu = device.startswith("cuda")
    name = torch.cuda.get_device_name(device) if on_gpu else cpu_model()
    check = GpuCheck(device, name, environment(device, args.min_run_s), command)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        folder = Path(tmp)
        devices = [(device, args.items)] + ([("cpu", max(args.items // 8, 64))] if on_gpu else [])
        for dev, items in devices:
            print(f"synthetic data on {dev} ...", flush=True)
            check.synthetic += measure_synthetic(
                dev,
                items=items,
                batch=min(items, 1024),
                image_size=64,
                repeats=args.repeats,
                artifact_dir=folder,
                min_run_s=args.min_run_s,
            )
        check.inference = _inference(args, device)
        print(f"saturating run ({args.saturate_s:g} s) ...", flush=True)
        sampler, batch, precision = _saturation(args, device)
        check.utilisation = saturate(device, args.saturate_s, sampler, batch=batch, precision=precision)
        if args.skip_mesh:
            check.mesh = MeshResult(ran=False, note="skipped (--skip-mesh)")
        else:
            print(f"the mesh with {'a GPU worker' if on_gpu else 'CPU workers'} ...", flush=True)
            check.mesh = asyncio.run(
                mesh_check(
                    folder / "mesh",
                    tasks=args.mesh_tasks,
                    items=256,
                    timeout_s=300,
                    device_name=name,
                    gpu_workers=1 if on_gpu else 0,
                    cpu_workers=1,
                )
            )
    return check


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python3 -m bench.gpu_check", description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda:0", help="cuda[:N], or cpu for CPU figures")
    parser.add_argument("--items", type=int, default=None, help="images per create task (GPU 4096, CPU 512)")
    parser.add_argument("--batch", type=int, default=None, help="inference batch size (GPU 1024, CPU 128)")
    parser.add_argument("--iterations", type=int, default=None, help="batches per timed run (GPU 20, CPU 2)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (CPU: 1, as a worker slot; GPU: torch's)"
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per figure (at least 3)")
    parser.add_argument("--min-run-s", type=float, default=0.5, help="shortest timed run (repeats the work)")
    parser.add_argument("--saturate-s", type=float, default=20.0)
    parser.add_argument("--saturate-batch", type=int, default=64, help="CPU saturating run's batch")
    parser.add_argument("--mesh-tasks", type=int, default=12)
    parser.add_argument("--skip-mesh", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="default: reports/gpu.md (gpu_cpu.md on cpu)")
    args = parser.parse_args(argv)
    if args.repeats < 3:
        parser.error("--repeats must be at least 3 (medians of repeated runs, DESIGN §9)")
    on_gpu = args.device.startswith("cuda")
    for key, gpu, cpu in (("items", 4096, 512), ("batch", 1024, 128), ("iterations", 20, 2)):
        if getattr(args, key) is None:
            setattr(args, key, gpu if on_gpu else cpu)
    if args.out is None:
        args.out = GPU_REPORT if on_gpu else CPU_REPORT
    if args.threads is None and not on_gpu:
        args.threads = 1
    return args


def _command(argv: Sequence[str], device: str) -> str:
    """The make command line that repeats this run."""
    rest, skip = [], False
    for arg in argv:
        if skip or arg.startswith("--device="):
            skip = False
            continue
        if arg == "--device":
            skip = True
            continue
        rest.append(arg)
    words = ["make", "gpu-check"] + ([f"DEVICE={device}"] if device != "cuda:0" else [])
    if rest:
        words.append("GPU_CHECK_ARGS=" + shlex.quote(shlex.join(rest)))
    return " ".join(words)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.device.startswith("cuda") and (not torch.cuda.is_available() or torch.cuda.device_count() == 0):
        print(f"{NO_GPU}; {CPU_HINT}", file=sys.stderr)
        return 2
    if args.device != "cpu" and not args.device.startswith("cuda"):
        print(f"unknown device {args.device!r}: cuda[:N] or cpu", file=sys.stderr)
        return 2
    os.environ.setdefault("SWITCHYARD_LOG_LEVEL", "WARNING")
    if args.threads:
        torch.set_num_threads(args.threads)
    check = run_check(args, args.device, _command(argv, args.device))
    text = render_report(check)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
