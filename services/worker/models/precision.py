"""Run a zoo model at a chosen precision: fp32, bf16, fp16 (GPU) or int8 (dynamic, CPU)."""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from services.worker.model import HandlerError, Reason

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

# torch.ao.quantization is deprecated in favour of torchao, which is not installed here;
# these are the two warnings dynamic quantisation raises, matched by their exact text.
# Any other warning still surfaces (and fails the tests, which turn warnings into errors).
QUANTIZATION_WARNINGS: tuple[tuple[str, type[Warning]], ...] = (
    (r"torch\.ao\.quantization is deprecated and will be removed", DeprecationWarning),
    (
        r"torch\.quantize_per_tensor, torch\.quantize_per_channel and other quantized tensor "
        r"creation functions that produce tensors with dtype torch\.quint8, torch\.qint8, and "
        r"torch\.qint32 are deprecated",
        UserWarning,
    ),
)


def ignore_quantization_warnings() -> None:
    """Filter exactly the deprecation warnings of dynamic quantisation (in the current filters)."""
    for message, category in QUANTIZATION_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


def check_precision(precision: str, device: str) -> None:
    """Raise UNSUPPORTED_PRECISION for combinations this device cannot run."""
    on_gpu = device.startswith("cuda")
    if precision == "fp16" and not on_gpu:
        raise HandlerError(Reason.UNSUPPORTED_PRECISION, "fp16 needs a GPU; this worker runs on the CPU")
    if precision == "int8" and on_gpu:
        raise HandlerError(Reason.UNSUPPORTED_PRECISION, "int8 dynamic quantisation runs on CPU workers only")
    if precision not in (*DTYPES, "int8"):
        raise HandlerError(Reason.UNSUPPORTED_PRECISION, f"unknown precision {precision!r}")


def convert_model(base: nn.Module, precision: str, device: str) -> nn.Module:
    """A copy of the fp32 CPU model `base` prepared for `precision` on `device`."""
    check_precision(precision, device)
    model = copy.deepcopy(base)
    if precision == "int8":
        with warnings.catch_warnings():
            ignore_quantization_warnings()
            from torch.ao.quantization import quantize_dynamic

            quantized: nn.Module = quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)  # type: ignore[no-untyped-call]
            return quantized.eval()
    return model.to(device=device, dtype=DTYPES[precision]).eval()


def cast_input(x: torch.Tensor, precision: str, device: str, float_input: bool) -> torch.Tensor:
    x = x.to(device)
    if float_input and precision in DTYPES:
        return x.to(DTYPES[precision])
    return x


def run_model(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Forward pass without autograd (int8 models may repeat the quantisation warnings)."""
    with torch.inference_mode(), warnings.catch_warnings():
        ignore_quantization_warnings()
        out: torch.Tensor = model(x)
    return out.float().cpu()
