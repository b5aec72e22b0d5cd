"""Training-data transforms and a training step (seeds S3/S4 and the `training_step` category).

Summary keys:
- preprocess: items, shape, flipped, mean_before, std_before, mean_after, std_after, datablock
- training_step: model, precision, steps, batch_size, losses, initial_loss, final_loss, grad_norm
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F

from services.worker.handlers.context import HandlerContext, task_seed
from services.worker.handlers.inference import zoo_model
from services.worker.model import HandlerError, HandlerResult, Reason, TaskInput
from services.worker.models.zoo import ZOO

MAX_ITEMS = 4096


def _decode(task: TaskInput, ctx: HandlerContext, gen: torch.Generator) -> torch.Tensor:
    """uint8 (N, 3, H, W) images from task data (parameters.shape), an input datablock, or noise."""
    if task.data:
        shape = task.parameters.get("shape")
        if not isinstance(shape, list) or len(shape) != 4:
            raise HandlerError(Reason.INVALID_INPUT, "data needs parameters.shape = [N, 3, H, W]")
        dims = [int(v) for v in shape]
        if dims[1] != 3 or dims[0] * dims[1] * dims[2] * dims[3] != len(task.data):
            raise HandlerError(
                Reason.INVALID_INPUT, f"data of {len(task.data)} bytes does not match shape {dims}"
            )
        return torch.frombuffer(bytearray(task.data), dtype=torch.uint8).view(*dims)
    for ref in task.inputs:
        block = torch.load(ctx.resolve_input(ref), weights_only=True)
        if isinstance(block, dict) and isinstance(block.get("images"), torch.Tensor):
            images: torch.Tensor = block["images"]
            return images
    count = task.item_count or task.batch_size or 16
    if not 1 <= count <= MAX_ITEMS:
        raise HandlerError(Reason.INVALID_INPUT, f"item count {count} is not in [1, {MAX_ITEMS}]")
    return torch.randint(0, 256, (count, 3, 32, 32), generator=gen, dtype=torch.uint8)


def _augment(x: torch.Tensor, gen: torch.Generator, pad: int = 4) -> tuple[torch.Tensor, int]:
    """Random horizontal flips, random crops from a reflect-padded image, brightness jitter."""
    n, _, h, w = x.shape
    flip = (torch.rand(n, generator=gen) < 0.5).to(x.device)
    x = torch.where(flip.view(n, 1, 1, 1), x.flip(3), x)
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=gen)
    x = torch.stack([padded[i, :, dy : dy + h, dx : dx + w] for i, (dy, dx) in enumerate(offsets.tolist())])
    jitter = (0.8 + 0.4 * torch.rand(n, 1, 1, 1, generator=gen)).to(x.device)
    return (x * jitter).clamp(0, 1), int(flip.sum())


def preprocess(task: TaskInput, ctx: HandlerContext) -> HandlerResult:
    """Decode, augment and normalise a batch of images; store the float batch as a datablock."""
    gen = torch.Generator().manual_seed(task_seed(task))
    images = _decode(task, ctx, gen).to(ctx.device)
    x = images.float() / 255
    augmented, flipped = _augment(x, gen)
    mean = augmented.mean(dim=(0, 2, 3), keepdim=True)
    std = augmented.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    normalised = ((augmented - mean) / std).cpu()
    block = task.outputs[0] if task.outputs else f"{task.task_id}-preprocessed"
    path = ctx.datablock_path(block)
    torch.save({"tensor": normalised}, path)
    summary: dict[str, Any] = {
        "items": int(x.shape[0]),
        "shape": list(normalised.shape),
        "flipped": flipped,
        "mean_before": float(x.mean()),
        "std_before": float(x.std()),
        "mean_after": float(normalised.mean()),
        "std_after": float(normalised.std()),
        "datablock": block,
    }
    return HandlerResult(summary=summary, artifact_path=str(path), items=int(x.shape[0]))


def training_step(task: TaskInput, ctx: HandlerContext) -> HandlerResult:
    """A few SGD steps of a zoo model on seeded data; the cached model itself is not changed."""
    name = task.model_name or "mlp"
    precision = task.precision or "fp32"
    if precision not in {"fp32", "bf16"} and not (precision == "fp16" and ctx.device.startswith("cuda")):
        raise HandlerError(Reason.UNSUPPORTED_PRECISION, f"training at {precision} is not supported here")
    model = copy.deepcopy(zoo_model(ctx, name, "fp32")).to(ctx.device).train()
    steps = int(task.parameters.get("steps", 3))
    batch = task.batch_size if task.batch_size > 0 else 16
    if not 1 <= steps <= 100 or not 1 <= batch <= 1024:
        raise HandlerError(Reason.INVALID_INPUT, "steps must be in [1, 100] and batch_size in [1, 1024]")
    gen = torch.Generator().manual_seed(task_seed(task))
    x = ZOO[name].make_input(batch, gen).to(ctx.device)
    y = torch.randint(0, 10, (batch,), generator=gen).to(ctx.device)
    optimiser = torch.optim.SGD(model.parameters(), lr=float(task.parameters.get("lr", 0.05)), momentum=0.9)
    losses, grad_norm = [], 0.0
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    device_type = "cuda" if ctx.device.startswith("cuda") else "cpu"
    for _ in range(steps):
        optimiser.zero_grad()
        with torch.autocast(device_type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            loss = F.cross_entropy(model(x).float(), y)
        loss.backward()  # type: ignore[no-untyped-call]
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0))
        optimiser.step()
        losses.append(float(loss.detach()))
    summary = {
        "model": name,
        "precision": precision,
        "steps": steps,
        "batch_size": batch,
        "losses": losses,
        "initial_loss": losses[0],
        "final_loss": losses[-1],
        "grad_norm": grad_norm,
    }
    return HandlerResult(summary=summary, items=batch * steps)
