"""The built-in model zoo: small models defined in code with seeded weights (no downloads)."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

NUM_CLASSES = 10


class Mlp(nn.Module):
    def __init__(self, features: int = 64, hidden: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(features, hidden),
            nn.GELU(),
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.Linear(hidden, NUM_CLASSES),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.skip(x))


class ResNetSmall(nn.Module):
    """A ResNet-style CNN for 3x32x32 inputs: stem, three basic blocks, pooled linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.blocks = nn.Sequential(BasicBlock(16, 16, 1), BasicBlock(16, 32, 2), BasicBlock(32, 64, 2))
        self.head = nn.Linear(64, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.blocks(self.stem(x))
        out: torch.Tensor = self.head(y.mean(dim=(2, 3)))
        return out


class EncoderBlock(nn.Module):
    """Pre-norm self-attention block built from nn.Linear, so int8 dynamic quantisation applies."""

    def __init__(self, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.ff1 = nn.Linear(dim, hidden)
        self.ff2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        qkv = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        x = x + self.proj(attn.transpose(1, 2).reshape(b, t, d))
        out: torch.Tensor = x + self.ff2(F.gelu(self.ff1(self.norm2(x))))
        return out


class TransformerEncoder(nn.Module):
    """Token classifier: embedding, two encoder blocks, mean pooling, linear head."""

    def __init__(self, vocab: int = 1000, seq_len: int = 16, dim: int = 64, heads: int = 4) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.randn(seq_len, dim) * 0.02)
        self.blocks = nn.Sequential(EncoderBlock(dim, heads, 2 * dim), EncoderBlock(dim, heads, 2 * dim))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, NUM_CLASSES)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.embed(tokens) + self.pos[: tokens.shape[1]])
        out: torch.Tensor = self.head(self.norm(x).mean(dim=1))
        return out


@dataclass(frozen=True)
class Tolerance:
    """How far a reduced precision may stray from the fp32 CPU model on the same inputs.

    `max_abs_diff` bounds |logits - fp32 logits| over a batch (the zoo's logits are of
    order 0.1-1); `min_top1_agreement` bounds the share of items whose argmax is unchanged
    (near-ties flip, so it is below 1). Measured worst cases over 5 seeds x 256 items,
    times about 3-4 (docs/gpu.md lists them).
    """

    max_abs_diff: float
    min_top1_agreement: float


@dataclass(frozen=True)
class ModelSpec:
    """A zoo entry: how to build the module and how to make a batch of its inputs."""

    name: str
    build: Callable[[], nn.Module]
    make_input: Callable[[int, torch.Generator], torch.Tensor]
    # Whether inputs are floating point (cast to the precision) or token ids (kept).
    float_input: bool = True
    # Per precision (bf16, fp16, int8) versus fp32.
    tolerance: Mapping[str, Tolerance] = field(default_factory=dict)


def _features(batch: int, gen: torch.Generator) -> torch.Tensor:
    return torch.randn(batch, 64, generator=gen)


def _images(batch: int, gen: torch.Generator) -> torch.Tensor:
    return torch.randn(batch, 3, 32, 32, generator=gen)


def _tokens(batch: int, gen: torch.Generator) -> torch.Tensor:
    return torch.randint(0, 1000, (batch, 16), generator=gen)


def _tolerances(bf16: float, int8: float) -> dict[str, Tolerance]:
    # fp16 keeps more mantissa than bf16 over the zoo's small range: bf16's bound holds.
    half = Tolerance(bf16, 0.95)
    return {"bf16": half, "fp16": half, "int8": Tolerance(int8, 0.90)}


# Measured worst max |diff| on CPU: mlp bf16 0.0013 / int8 0.0068; resnet_small 0.0011 /
# 0.0023; transformer_encoder 0.0051 / 0.0162.
ZOO: dict[str, ModelSpec] = {
    "mlp": ModelSpec("mlp", Mlp, _features, tolerance=_tolerances(0.005, 0.025)),
    "resnet_small": ModelSpec("resnet_small", ResNetSmall, _images, tolerance=_tolerances(0.005, 0.01)),
    "transformer_encoder": ModelSpec(
        "transformer_encoder",
        TransformerEncoder,
        _tokens,
        float_input=False,
        tolerance=_tolerances(0.02, 0.06),
    ),
}


def model_names() -> tuple[str, ...]:
    return tuple(sorted(ZOO))


def build_model(name: str) -> nn.Module:
    """The fp32 model `name` on the CPU, in eval mode, with weights seeded by its name."""
    spec = ZOO[name]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(zlib.crc32(name.encode()))
        model = spec.build()
        _warm_batchnorm(model)
    return model.eval()


def _warm_batchnorm(model: nn.Module) -> None:
    """Give BatchNorm layers non-trivial seeded statistics so eval outputs are not degenerate."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            assert module.running_mean is not None and module.running_var is not None
            module.running_mean.copy_(torch.randn(module.num_features) * 0.1)
            module.running_var.copy_(torch.rand(module.num_features) * 0.5 + 0.75)
