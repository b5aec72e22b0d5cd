"""The Markdown report of `make gpu-check` (bench/reports/gpu.md, or gpu_cpu.md for CPU figures)."""

from __future__ import annotations

import statistics

from bench.gpu.results import GpuCheck, InferenceResult, MeshResult, SyntheticResult, Utilisation

BUSY_GOAL = 0.90
CPU_NOTE = (
    "They measure the same workloads on the CPU with the torch threads listed below (a CPU "
    "worker's slot runs one), at fp32, bf16 and int8 (fp16 is GPU only). The host may be "
    "shared: its load average at start, and its busy share during the saturating run, show "
    "what else competed for the cores."
)
SOURCES = {
    "NVML": "NVML's GPU utilisation: the share of each sample period in which a kernel ran.",
    "process CPU time": "This process's CPU seconds over (wall seconds x the threads torch may use): "
    "100% means every torch thread computed all the time.",
}
CPU_HEADLINE = (
    "**These are CPU figures. The GPU figures are missing: no GPU machine was lent to this "
    "project, so `make gpu-check` has not run on a GPU, and nothing below is a GPU measurement.**"
)


def render_report(check: GpuCheck) -> str:
    """The whole report as text."""
    lines = [*_header(check), "", "## Synthetic data (create_synthetic_data)", ""]
    lines += _synthetic(check.synthetic)
    lines += ["", "## Inference (zoo models)", "", *_inference(check.inference)]
    lines += ["", f"## Utilisation ({check.utilisation.source})", "", *_utilisation(check.utilisation)]
    worker = "CPU workers only" if check.on_cpu else "a GPU worker"
    lines += ["", f"## The mesh with {worker}", "", *_mesh(check.mesh)]
    return "\n".join(lines) + "\n"


def _header(check: GpuCheck) -> list[str]:
    env = ", ".join(f"{k} {v}" for k, v in check.environment.items())
    lines = ["# GPU check: CPU figures" if check.on_cpu else "# GPU check", ""]
    if check.on_cpu:
        lines += [CPU_HEADLINE, "", CPU_NOTE, ""]
    if check.command:
        lines += [f"Reproduce: `{check.command}` from the repository root.", ""]
    lines.append(
        f"Device: **{check.device_name}** (`{check.device}`). {env}. Every figure is the median "
        "of repeated timed runs with its min and max in brackets; a run repeats its call until it "
        "lasts the shortest timed run listed."
    )
    return lines


def _synthetic(results: list[SyntheticResult]) -> list[str]:
    lines = [
        "`handler` is the create task as a slot runs it (render, labels, save); `render` the kernel alone.",
        "",
        "| device | what | image size | items per call | batch | repeats | images/s |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {s.device} | {s.what} | {s.image_size} | {s.items} | {s.batch} | {s.images_per_s.repeats} "
        f"| {s.images_per_s.text()} |"
        for s in results
    ]
    for what in ("handler", "render"):
        gpu = [s for s in results if s.what == what and s.device.startswith("cuda")]
        cpu = [s for s in results if s.what == what and s.device == "cpu"]
        if gpu and cpu and cpu[0].images_per_s.median > 0:
            ratio = gpu[0].images_per_s.median / cpu[0].images_per_s.median
            lines.append(f"\nGPU over CPU ({what}): **{ratio:.1f}x**.")
    return lines


def _inference(results: list[InferenceResult]) -> list[str]:
    lines = [
        "Differences are from the fp32 model on the CPU, on the same 256 inputs.",
        "",
        "| model | precision | batch | items/s | speedup vs fp32 | max abs diff vs fp32 "
        "| top-1 agreement | within tolerance |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r.error:
            lines.append(f"| {r.model} | {r.precision} | {r.batch} | — | — | — | — | not run: {r.error} |")
            continue
        lines.append(
            f"| {r.model} | {r.precision} | {r.batch} | {r.items_per_s.text()} | {r.speedup_vs_fp32:.2f}x "
            f"| {r.max_abs_diff:.4f} | {r.top1_agreement:.1%} | {'yes' if r.within_tolerance else '**no**'} |"
        )
    return lines


def _utilisation(u: Utilisation) -> list[str]:
    if not u.available or not u.samples:
        return [f"Not measured: {u.note or 'no samples'}."]
    verdict = "meets" if u.busy >= BUSY_GOAL else "**misses**"
    lines = [
        f"Workload: {u.workload}, {u.seconds:.0f} s, {len(u.samples)} samples. {SOURCES.get(u.source, '')}"
    ]
    if u.note:
        lines += ["", u.note]
    lines += [
        "",
        f"Mean busy {u.busy:.0%} (min {min(u.samples):.0%}, max {max(u.samples):.0%}): "
        f"{verdict} the goal of {BUSY_GOAL:.0%}.",
    ]
    if u.host_samples:
        host = statistics.fmean(u.host_samples)
        lines += [
            "",
            f"The host's CPUs, all processes together (/proc/stat): mean busy {host:.0%} "
            f"(min {min(u.host_samples):.0%}, max {max(u.host_samples):.0%}).",
        ]
    return lines


def _mesh(m: MeshResult) -> list[str]:
    if not m.ran:
        return [f"Not run: {m.note}."]
    kind = m.target.upper()
    placed = "all" if m.on_target == m.tasks else f"**only {m.on_target}**"
    lines = [
        f"{m.tasks} create_synthetic_data tasks in {m.seconds:.0f} s (mesh start included), category "
        f"profile `{m.category_profile}`, eligibility: {_counts(m.eligibility)}: {placed} of them ran "
        f"on a {kind} worker. Workers: {_counts(m.workers)}; states: {_counts(m.states)}.",
        "",
        f"{kind} worker's profile (device model `{m.device_name}`) in the profile store: "
        f"{'yes' if m.profile_found else '**no**'}.",
        "",
        "| device model | model | precision | category | count | items/s |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {p.device_model} | {p.model or '—'} | {p.precision} | {p.category} | {p.count} "
        f"| {p.items_per_s:,.0f} |"
        for p in m.profiles
    ]
    return lines


def _counts(values: dict[str, int]) -> str:
    return ", ".join(f"{k or '(none)'} {v}" for k, v in sorted(values.items())) or "none"
