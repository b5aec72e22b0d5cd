"""PNG writing with zlib and struct only, and contact sheets of rendered image batches."""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

import torch


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def encode_png(rgb: torch.Tensor) -> bytes:
    """PNG bytes of an (H, W, 3) uint8 tensor (8-bit RGB, no filtering)."""
    if rgb.dim() != 3 or rgb.shape[2] != 3 or rgb.dtype != torch.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 tensor, got {tuple(rgb.shape)} {rgb.dtype}")
    height, width = int(rgb.shape[0]), int(rgb.shape[1])
    rows = rgb.contiguous().cpu().numpy()
    raw = b"".join(b"\x00" + rows[y].tobytes() for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"".join(
        [
            b"\x89PNG\r\n\x1a\n",
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", zlib.compress(raw, 6)),
            _chunk(b"IEND", b""),
        ]
    )


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) images as uint8; floats are taken to be in [0, 1]."""
    if images.dtype == torch.uint8:
        return images
    return (images.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)


def contact_sheet(images: torch.Tensor, columns: int = 0, pad: int = 2) -> torch.Tensor:
    """Tile (N, 3, H, W) images into one (H', W', 3) uint8 grid with a grey border."""
    if images.dim() != 4 or images.shape[1] != 3 or images.shape[0] == 0:
        raise ValueError(f"expected (N, 3, H, W) images with N > 0, got {tuple(images.shape)}")
    imgs = to_uint8(images.cpu())
    n, _, h, w = imgs.shape
    cols = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    sheet = torch.full((3, rows * (h + pad) + pad, cols * (w + pad) + pad), 96, dtype=torch.uint8)
    for i in range(n):
        y, x = pad + (i // cols) * (h + pad), pad + (i % cols) * (w + pad)
        sheet[:, y : y + h, x : x + w] = imgs[i]
    return sheet.permute(1, 2, 0).contiguous()


def write_contact_sheet(images: torch.Tensor, path: str | Path, columns: int = 0) -> Path:
    """Write a PNG contact sheet of (N, 3, H, W) images (uint8, or floats in [0, 1])."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(encode_png(contact_sheet(images, columns)))
    return out
