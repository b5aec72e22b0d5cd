"""The five synthetic-data categories (seed S1), compact but real torch work.

Data flows as datablocks (.pt files): generate → ingest → identify → vary → create. Each
handler also runs standalone: without an input datablock it makes seeded defaults.

Summary keys:
- generate_source_assets: count, size, shape_counts, texture_counts, mean_coverage, datablock
- ingest_source_assets: accepted, rejected, size, channel_mean, channel_std, datablock
- identify_variation_parameters: asset_count, parameters {name: [lo, hi]}, stats, datablock
- vary_variation_parameters: count, names, stats {name: {min, max, mean}}, datablock
- create_synthetic_data: count, image_size, label_counts, mean_box_area_fraction, empty_masks,
  pixel_mean, pixel_std, format ("pt": images uint8 Nx3xHxW, masks, boxes xyxy, labels),
  contact_sheet (PNG path, when parameters.contact_sheet is true)
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from services.worker.handlers.context import HandlerContext, task_seed
from services.worker.handlers.png import write_contact_sheet
from services.worker.handlers.render import (
    BACKGROUNDS,
    PARAM_NAMES,
    SHAPES,
    boxes_from_masks,
    default_space,
    generate_assets,
    render,
    sample_variations,
)
from services.worker.model import HandlerError, HandlerResult, Reason, TaskInput

__all__ = [
    "create_synthetic_data",
    "generate_source_assets",
    "identify_variation_parameters",
    "ingest_source_assets",
    "vary_variation_parameters",
    "write_contact_sheet",
]

MAX_ITEMS = 4096
ASSET_SIZE = 32


def _int_param(task: TaskInput, name: str, default: int, lo: int, hi: int) -> int:
    value = task.parameters.get(name, default)
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise HandlerError(Reason.INVALID_INPUT, f"parameter {name!r} must be an integer") from None
    if not lo <= number <= hi:
        raise HandlerError(Reason.INVALID_INPUT, f"parameter {name!r}={number} is not in [{lo}, {hi}]")
    return number


def _count(task: TaskInput, default: int) -> int:
    count = task.item_count or int(task.parameters.get("count", default))
    if not 1 <= count <= MAX_ITEMS:
        raise HandlerError(Reason.INVALID_INPUT, f"item count {count} is not in [1, {MAX_ITEMS}]")
    return count


def _gen(task: TaskInput) -> torch.Generator:
    return torch.Generator().manual_seed(task_seed(task))


def _save(task: TaskInput, ctx: HandlerContext, payload: dict[str, Any], suffix: str) -> tuple[Path, str]:
    """Store payload as the task's first output datablock (or an artifact); return (path, block id)."""
    block = task.outputs[0] if task.outputs else f"{task.task_id}-{suffix}"
    path = ctx.datablock_path(block)
    torch.save(payload, path)
    return path, block


def _load_inputs(task: TaskInput, ctx: HandlerContext) -> list[dict[str, Any]]:
    blocks = []
    for ref in task.inputs:
        try:
            data = torch.load(ctx.resolve_input(ref), weights_only=True)
        except HandlerError:
            raise
        except Exception as exc:
            raise HandlerError(Reason.INVALID_INPUT, f"input {ref!r} is not a datablock: {exc}") from exc
        if not isinstance(data, dict):
            raise HandlerError(Reason.INVALID_INPUT, f"input {ref!r} does not hold a mapping")
        blocks.append(data)
    return blocks


def _assets(task: TaskInput, ctx: HandlerContext) -> dict[str, Any]:
    for block in _load_inputs(task, ctx):
        if "images" in block and "masks" in block:
            return block
    return generate_assets(8, ASSET_SIZE, _gen(task))


def generate_source_assets(task: TaskInput, ctx: HandlerContext) -> HandlerResult:
    count = _count(task, 8)
    size = _int_param(task, "size", ASSET_SIZE, 8, 256)
    assets = generate_assets(count, size, _gen(task))
    path, block = _save(task, ctx, assets, "assets")
    summary = {
        "count": count,
        "size": size,
        "shape_counts": dict(Counter(assets["shapes"])),
        "texture_counts": dict(Counter(assets["textures"])),
        "mean_coverage": float(assets["masks"].float().mean()),
        "datablock": block,
    }
    return HandlerResult(summary=summary, artifact_path=str(path), items=count)


def ingest_source_assets(task: TaskInput, ctx: HandlerContext) -> HandlerResult:
    """Validate assets, drop bad ones, resize to the canonical size, store a datablock."""
    raw = _assets(task, ctx)
    images, masks = raw["images"], raw["masks"]
    if images.dim() != 4 or images.shape[1] != 3 or masks.dim() != 3 or masks.shape[0] != images.shape[0]:
        raise HandlerError(
            Reason.INVALID_INPUT, f"assets have shape {tuple(images.shape)}, want (N, 3, H, W)"
        )
    keep = masks.flatten(1).any(1) & (images.flatten(1).float().std(1) > 0)
    size = _int_param(task, "size", ASSET_SIZE, 8, 256)
    floats = F.interpolate(
        images[keep].float() / 255, size=(size, size), mode="bilinear", align_corners=False
    )
    small_masks = F.interpolate(masks[keep].float().unsqueeze(1), size=(size, size), mode="nearest")[:, 0]
    shapes = [s for s, k in zip(raw.get("shapes", []), keep.tolist(), strict=False) if k]
    textures = [t for t, k in zip(raw.get("textures", []), keep.tolist(), strict=False) if k]
    datablock = {
        "images": (floats.clamp(0, 1) * 255).round().to(torch.uint8),
        "masks": small_masks.bool(),
        "shapes": shapes,
        "textures": textures,
    }
    path, block = _save(task, ctx, datablock, "ingested")
    pixels = floats.permute(1, 0, 2, 3).reshape(3, -1)
    summary = {
        "accepted": int(keep.sum()),
        "rejected": int((~keep).sum()),
        "size": size,
        "channel_mean": [round(float(v), 6) for v in pixels.mean(1)] if pixels.numel() else [0.0] * 3,
        "channel_std": [round(float(v), 6) for v in pixels.std(1)] if pixels.shape[1] > 1 else [0.0] * 3,
        "datablock": block,
    }
    return HandlerResult(summary=summary, artifact_path=str(path), items=int(keep.sum()))


def identify_variation_parameters(task: TaskInput, ctx: HandlerContext) -> HandlerResult:
    """Derive the variation space (pose, lighting, colour, background, noise) from the assets."""
    assets = _assets(task, ctx)
    images, masks = assets["images"].float() / 255, assets["masks"].float()
    if images.shape[0] == 0:
        raise HandlerError(Reason.INVALID_INPUT, "no assets to analyse")
    coverage = float(masks.mean())
    inside = masks.unsqueeze(1).expand_as(images).bool()
    luminance = float(images[inside].mean()) if inside.any() else 0.5
    colourfulness = float(images.std(1)[masks.bool()].mean()) if masks.any() else 0.0
    residual = images - F.avg_pool2d(images, 3, stride=1, padding=1)
    noise = float(residual[inside].std()) if inside.sum() > 1 else 0.0
    symmetric = set(assets.get("shapes", [])) <= {"circle", "ring"}
    scale_hi = min(0.9, 0.5 / math.sqrt(max(coverage, 1e-3)))
    space = {
        "rotation": [0.0, 0.0] if symmetric else [-math.pi, math.pi],
        "scale": [round(scale_hi * 0.45, 4), round(scale_hi, 4)],
        "tx": [-round(1 - scale_hi * 0.6, 4), round(1 - scale_hi * 0.6, 4)],
        "ty": [-round(1 - scale_hi * 0.6, 4), round(1 - scale_hi * 0.6, 4)],
        "brightness": [
            round(max(0.5, 0.6 + 0.3 * (luminance - 0.5)), 4),
            round(min(1.8, 0.45 / max(luminance, 0.25) + 0.6), 4),
        ],
        "hue_shift": [-round(min(0.5, 0.1 + colourfulness), 4), round(min(0.5, 0.1 + colourfulness), 4)],
        "saturation": [0.6, round(1.0 + min(0.5, colourfulness), 4)],
        "background": [0.0, float(len(BACKGROUNDS))],
        "noise_std": [0.0, round(max(0.01, 0.08 - noise), 4)],
    }
    stats = {"coverage": coverage, "luminance": luminance, "colourfulness": colourfulness, "noise": noise}
    path, block = _save(task, ctx, {"space": space}, "space")
    summary = {"asset_count": int(images.shape[0]), "parameters": space, "stats": stats, "datablock": block}
    return HandlerResult(
        summary=summary,
        inline=json.dumps(space).encode(),
        artifact_path=str(path),
        items=int(images.shape[0]),
    )


def _space(task: TaskInput, ctx: HandlerContext) -> dict[str, list[float]]:
    space = default_space()
    for block in _load_inputs(task, ctx):
        if isinstance(block.get("space"), dict):
            space.update(block["space"])
    given = task.parameters.get("space")
    if isinstance(given, dict):
        space.update({k: [float(v[0]), float(v[1])] for k, v in given.items() if k in space})
    for name, (lo, hi) in space.items():
        if lo > hi:
            raise HandlerError(Reason.INVALID_INPUT, f"variation range {name}: {lo} > {hi}")
    return space


def vary_variation_parameters(task: TaskInput, ctx: HandlerContext) -> HandlerResult:
    count = _count(task, 16)
    values = sample_variations(_space(task, ctx), count, _gen(task))
    path, block = _save(task, ctx, {"params": values, "names": list(PARAM_NAMES)}, "variations")
    stats = {
        name: {
            "min": float(values[:, i].min()),
            "max": float(values[:, i].max()),
            "mean": float(values[:, i].mean()),
        }
        for i, name in enumerate(PARAM_NAMES)
    }
    summary = {"count": count, "names": list(PARAM_NAMES), "stats": stats, "datablock": block}
    return HandlerResult(summary=summary, artifact_path=str(path), items=count)


def _variations(task: TaskInput, ctx: HandlerContext, count: int) -> torch.Tensor:
    for block in _load_inputs(task, ctx):
        params = block.get("params")
        if isinstance(params, torch.Tensor) and params.dim() == 2 and params.shape[1] == len(PARAM_NAMES):
            return params.repeat(math.ceil(count / params.shape[0]), 1)[:count]
    return sample_variations(_space(task, ctx), count, _gen(task))


def create_synthetic_data(task: TaskInput, ctx: HandlerContext) -> HandlerResult:
    """Render item_count labelled images (assets x variations) in batches on the task's device."""
    count = _count(task, 16)
    size = _int_param(task, "image_size", 64, 16, 256)
    assets, params, gen = _assets(task, ctx), _variations(task, ctx, count), _gen(task)
    n_assets = int(assets["images"].shape[0])
    pick = torch.randint(n_assets, (count,), generator=gen)
    batch = task.batch_size if task.batch_size > 0 else count
    images, masks = [], []
    for start in range(0, count, batch):
        idx = pick[start : start + batch]
        img, mask = render(
            assets["images"][idx], assets["masks"][idx], params[start : start + batch], size, gen, ctx.device
        )
        images.append((img * 255).round().to(torch.uint8).cpu())
        masks.append(mask.cpu())
    shapes = list(assets.get("shapes") or ["shape"] * n_assets)
    labels = torch.tensor([SHAPES.index(shapes[i]) if shapes[i] in SHAPES else 0 for i in pick.tolist()])
    out = {"images": torch.cat(images), "masks": torch.cat(masks), "labels": labels}
    out["boxes"] = boxes_from_masks(out["masks"])
    # A declared output makes the rendered set a datablock (cached, published, reusable).
    path = ctx.datablock_path(task.outputs[0]) if task.outputs else ctx.artifact_path(task, "-synthetic.pt")
    torch.save({**out, "label_names": list(SHAPES), "params": params, "param_names": list(PARAM_NAMES)}, path)
    summary = _create_summary(out, size)
    if task.outputs:
        summary["datablock"] = task.outputs[0]
    if task.parameters.get("contact_sheet"):
        summary["contact_sheet"] = str(write_contact_sheet(out["images"], path.with_suffix(".png")))
    return HandlerResult(summary=summary, artifact_path=str(path), items=count)


def _create_summary(out: dict[str, torch.Tensor], size: int) -> dict[str, Any]:
    boxes, imgs = out["boxes"], out["images"].float() / 255
    areas = ((boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)).float() / (size * size)
    areas = areas * out["masks"].flatten(1).any(1)
    return {
        "count": int(imgs.shape[0]),
        "image_size": [size, size],
        "label_counts": {SHAPES[k]: v for k, v in sorted(Counter(out["labels"].tolist()).items())},
        "mean_box_area_fraction": float(areas.mean()),
        "empty_masks": int((~out["masks"].flatten(1).any(1)).sum()),
        "pixel_mean": float(imgs.mean()),
        "pixel_std": float(imgs.std()),
        "format": "pt",
    }
