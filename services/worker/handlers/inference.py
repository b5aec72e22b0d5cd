"""Batched inference on the built-in zoo at fp32, bf16, fp16 (GPU) or int8 (CPU).

Summary keys: model, precision, device, batch_size, items, batches, output_shape,
max_abs_diff_vs_fp32, mean_abs_diff_vs_fp32, top1_agreement_vs_fp32, tolerance_max_abs_diff,
within_tolerance (the model's stated tolerance for this precision, zoo.py), output_mean.
The outputs (float32 logits) come back inline when they fit in 64 KiB, else as a .pt file.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from services.worker.handlers.context import HandlerContext, task_seed
from services.worker.model import INLINE_LIMIT_BYTES, HandlerError, HandlerResult, Reason, TaskInput
from services.worker.models.precision import cast_input, check_precision, convert_model, run_model
from services.worker.models.zoo import ZOO, build_model

DEFAULT_MODEL = "mlp"
DEFAULT_BATCH = 8


def zoo_model(ctx: HandlerContext, name: str, precision: str) -> nn.Module:
    """The warm model (name, precision, device) from the slot's cache."""
    if name not in ZOO:
        raise HandlerError(Reason.UNKNOWN_MODEL, f"unknown model {name!r}; the zoo has {sorted(ZOO)}")
    check_precision(precision, ctx.device)
    base = _cpu_reference(ctx, name)
    if precision == "fp32" and ctx.device == "cpu":
        return base
    model: nn.Module = ctx.models.get(
        (name, precision, ctx.device), lambda: convert_model(base, precision, ctx.device)
    )
    return model


def _inputs(task: TaskInput, count: int) -> torch.Tensor:
    spec = ZOO[task.model_name or DEFAULT_MODEL]
    gen = torch.Generator().manual_seed(task_seed(task))
    return spec.make_input(count, gen)


def inference(task: TaskInput, ctx: HandlerContext) -> HandlerResult:
    name = task.model_name or DEFAULT_MODEL
    precision = task.precision or "fp32"
    model = zoo_model(ctx, name, precision)
    reference = _cpu_reference(ctx, name)
    batch = task.batch_size if task.batch_size > 0 else DEFAULT_BATCH
    count = task.item_count if task.item_count > 0 else batch
    x = _inputs(task, count)
    float_input = ZOO[name].float_input
    outputs, references = [], []
    for start in range(0, count, batch):
        chunk = x[start : start + batch]
        out = run_model(model, cast_input(chunk, precision, ctx.device, float_input))
        outputs.append(out)
        references.append(out if precision == "fp32" else run_model(reference, chunk))
    logits, ref = torch.cat(outputs), torch.cat(references)
    summary = _summary(name, precision, ctx.device, batch, len(outputs), logits, ref)
    return _package(task, ctx, logits, summary)


def _cpu_reference(ctx: HandlerContext, name: str) -> nn.Module:
    """The fp32 CPU model: the reference every precision is compared with."""
    model: nn.Module = ctx.models.get((name, "fp32", "cpu"), lambda: build_model(name))
    return model


def _summary(
    name: str, precision: str, device: str, batch: int, batches: int, logits: torch.Tensor, ref: torch.Tensor
) -> dict[str, Any]:
    diff = (logits - ref).abs()
    agreement = float((logits.argmax(1) == ref.argmax(1)).float().mean())
    tolerance = ZOO[name].tolerance.get(precision)
    within = tolerance is None or (
        float(diff.max()) <= tolerance.max_abs_diff and agreement >= tolerance.min_top1_agreement
    )
    return {
        "model": name,
        "precision": precision,
        "device": device,
        "batch_size": batch,
        "items": int(logits.shape[0]),
        "batches": batches,
        "output_shape": list(logits.shape),
        "max_abs_diff_vs_fp32": float(diff.max()),
        "mean_abs_diff_vs_fp32": float(diff.mean()),
        "top1_agreement_vs_fp32": agreement,
        "tolerance_max_abs_diff": tolerance.max_abs_diff if tolerance else 0.0,
        "within_tolerance": within,
        "output_mean": float(logits.mean()),
    }


def _package(
    task: TaskInput, ctx: HandlerContext, logits: torch.Tensor, summary: dict[str, Any]
) -> HandlerResult:
    raw = logits.contiguous().numpy().astype("<f4").tobytes()
    if len(raw) <= INLINE_LIMIT_BYTES:
        return HandlerResult(summary=summary, inline=raw, items=int(logits.shape[0]))
    path = ctx.artifact_path(task, "-logits.pt")
    torch.save(logits, path)
    return HandlerResult(summary=summary, artifact_path=str(path), items=int(logits.shape[0]))
