"""Procedural assets and the renderer behind the synthetic-data handlers (torch ops only).

An asset is an RGBA tile: a shape mask (circle, square, triangle, ring) filled with a
texture (flat, stripes, checker, noise). Rendering places assets on a background under a
variation: rotation, scale, translation, brightness, hue shift, saturation, background
and sensor noise, with masks and boxes as labels.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

SHAPES = ("circle", "square", "triangle", "ring")
TEXTURES = ("flat", "stripes", "checker", "noise")
PARAM_NAMES = (
    "rotation",
    "scale",
    "tx",
    "ty",
    "brightness",
    "hue_shift",
    "saturation",
    "background",
    "noise_std",
)
BACKGROUNDS = torch.tensor(
    [
        [[0.10, 0.12, 0.20], [0.35, 0.40, 0.55]],
        [[0.85, 0.85, 0.80], [0.55, 0.55, 0.50]],
        [[0.15, 0.30, 0.12], [0.45, 0.60, 0.30]],
        [[0.40, 0.25, 0.15], [0.80, 0.65, 0.45]],
    ]
)


def _grid(size: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    coords = (torch.arange(size, device=device, dtype=torch.float32) + 0.5) / size * 2 - 1
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    return y, x


def shape_mask(kind: str, size: int, device: str = "cpu") -> torch.Tensor:
    """A (size, size) float mask in {0, 1} of one of SHAPES."""
    y, x = _grid(size, device)
    r = torch.sqrt(x * x + y * y)
    if kind == "circle":
        inside = r < 0.75
    elif kind == "square":
        inside = torch.maximum(x.abs(), y.abs()) < 0.62
    elif kind == "triangle":
        inside = (y < 0.65) & (y > -0.75) & (x.abs() < (y + 0.75) * 0.6)
    elif kind == "ring":
        inside = (r < 0.8) & (r > 0.45)
    else:
        raise ValueError(f"unknown shape {kind!r}")
    return inside.float()


def texture(kind: str, size: int, colour: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A (3, size, size) texture in [0, 1] around `colour`."""
    y, x = _grid(size, "cpu")
    if kind == "flat":
        shade = torch.ones_like(x)
    elif kind == "stripes":
        shade = 0.65 + 0.35 * torch.sign(torch.sin(x * 9.0 + y * 4.0))
    elif kind == "checker":
        shade = 0.65 + 0.35 * torch.sign(torch.sin(x * 8.0) * torch.sin(y * 8.0))
    elif kind == "noise":
        coarse = torch.rand(1, 1, 6, 6, generator=gen)
        shade = (
            0.55 + 0.45 * F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)[0, 0]
        )
    else:
        raise ValueError(f"unknown texture {kind!r}")
    return (colour.view(3, 1, 1) * shade).clamp(0, 1)


def generate_assets(count: int, size: int, gen: torch.Generator) -> dict[str, Any]:
    """`count` seeded RGBA assets: images (N,3,S,S) uint8, masks (N,S,S) bool, shape and texture names."""
    images, masks, shapes, textures = [], [], [], []
    for i in range(count):
        shape = (
            SHAPES[int(torch.randint(len(SHAPES), (1,), generator=gen))] if i >= len(SHAPES) else SHAPES[i]
        )
        tex = TEXTURES[int(torch.randint(len(TEXTURES), (1,), generator=gen))]
        colour = 0.25 + 0.75 * torch.rand(3, generator=gen)
        mask = shape_mask(shape, size)
        images.append((texture(tex, size, colour, gen) * mask * 255).round().to(torch.uint8))
        masks.append(mask.bool())
        shapes.append(shape)
        textures.append(tex)
    return {
        "images": torch.stack(images),
        "masks": torch.stack(masks),
        "shapes": shapes,
        "textures": textures,
    }


def default_space() -> dict[str, list[float]]:
    return {
        "rotation": [-math.pi, math.pi],
        "scale": [0.35, 0.8],
        "tx": [-0.45, 0.45],
        "ty": [-0.45, 0.45],
        "brightness": [0.7, 1.3],
        "hue_shift": [-0.5, 0.5],
        "saturation": [0.6, 1.2],
        "background": [0.0, float(len(BACKGROUNDS))],
        "noise_std": [0.0, 0.06],
    }


def sample_variations(space: dict[str, list[float]], count: int, gen: torch.Generator) -> torch.Tensor:
    """(count, len(PARAM_NAMES)) parameter sets drawn uniformly from `space`."""
    lo = torch.tensor([space[n][0] for n in PARAM_NAMES])
    hi = torch.tensor([space[n][1] for n in PARAM_NAMES])
    values = lo + (hi - lo) * torch.rand(count, len(PARAM_NAMES), generator=gen)
    bg = PARAM_NAMES.index("background")
    values[:, bg] = values[:, bg].floor().clamp(0, len(BACKGROUNDS) - 1)
    return values


def _hue_matrix(shift: torch.Tensor) -> torch.Tensor:
    """(N, 3, 3) rotations about the grey axis by shift·2π (a hue shift)."""
    angle = shift * 2 * math.pi
    c, s = torch.cos(angle), torch.sin(angle)
    k = 1.0 / 3.0
    sq = math.sqrt(k)
    a = c + (1 - c) * k
    b = (1 - c) * k - sq * s
    d = (1 - c) * k + sq * s
    return torch.stack(
        [torch.stack([a, b, d], -1), torch.stack([d, a, b], -1), torch.stack([b, d, a], -1)], -2
    )


def render(
    assets: torch.Tensor,
    masks: torch.Tensor,
    params: torch.Tensor,
    size: int,
    gen: torch.Generator,
    device: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Render one image per row of params: (N,3,size,size) floats in [0,1] and (N,size,size) bool masks."""
    p = {name: params[:, i].to(device) for i, name in enumerate(PARAM_NAMES)}
    n = params.shape[0]
    rgba = torch.cat([assets.float() / 255, masks.float().unsqueeze(1)], dim=1).to(device)
    cos, sin = torch.cos(p["rotation"]), torch.sin(p["rotation"])
    inv = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2) / p["scale"].view(
        n, 1, 1
    )
    shift = -(inv @ torch.stack([p["tx"], p["ty"]], -1).unsqueeze(-1))
    grid = F.affine_grid(torch.cat([inv, shift], -1), [n, 4, size, size], align_corners=False)
    placed = F.grid_sample(rgba, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    fg, alpha = placed[:, :3], placed[:, 3:4]
    fg = torch.einsum("nij,njhw->nihw", _hue_matrix(p["hue_shift"]), fg)
    grey = fg.mean(1, keepdim=True)
    fg = (grey + (fg - grey) * p["saturation"].view(n, 1, 1, 1)) * p["brightness"].view(n, 1, 1, 1)
    image = alpha * fg + (1 - alpha) * _backgrounds(p["background"], size, device)
    # Sensor noise is drawn on the device (a host draw of N*3*size^2 values would bound a
    # GPU's rate), from a device generator seeded by the task's generator: deterministic
    # under a seed on a given device.
    noise_gen = torch.Generator(device=device).manual_seed(int(torch.randint(2**62, (1,), generator=gen)))
    noise = torch.randn(image.shape, generator=noise_gen, device=device) * p["noise_std"].view(n, 1, 1, 1)
    return (image + noise).clamp(0, 1), alpha[:, 0] > 0.5


def _backgrounds(index: torch.Tensor, size: int, device: str) -> torch.Tensor:
    pair = BACKGROUNDS.to(device)[index.long().clamp(0, len(BACKGROUNDS) - 1)]
    ramp = torch.linspace(0, 1, size, device=device).view(1, 1, size, 1)
    return pair[:, 0].view(-1, 3, 1, 1) * (1 - ramp) + pair[:, 1].view(-1, 3, 1, 1) * ramp


def boxes_from_masks(masks: torch.Tensor) -> torch.Tensor:
    """(N, 4) int64 boxes [x0, y0, x1, y1] (inclusive) of (N, H, W) masks; zeros when empty."""
    rows, cols = masks.any(2), masks.any(1)  # (N, H), (N, W)
    ys = torch.arange(masks.shape[1], device=masks.device)
    xs = torch.arange(masks.shape[2], device=masks.device)
    big = max(masks.shape[1], masks.shape[2])
    out = torch.stack(
        [
            torch.where(cols, xs, big).min(1).values,
            torch.where(rows, ys, big).min(1).values,
            torch.where(cols, xs, -1).max(1).values,
            torch.where(rows, ys, -1).max(1).values,
        ],
        1,
    )
    return torch.where(rows.any(1, keepdim=True), out, 0).to(torch.int64).cpu()
