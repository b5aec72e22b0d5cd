"""The built-in model zoo at every CPU precision, through the inference handler."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from services.worker.handlers.context import HandlerContext
from services.worker.handlers.inference import inference
from services.worker.model import HandlerError, TaskInput
from services.worker.models import ZOO, build_model, model_names
from services.worker.models.precision import convert_model

MODELS = ["mlp", "resnet_small", "transformer_encoder"]


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """As in a slot process (and this machine is small and shared)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> HandlerContext:
    return HandlerContext(device="cpu", artifact_dir=tmp_path_factory.mktemp("artifacts"))


def task(model: str, precision: str, **kw: Any) -> TaskInput:
    return TaskInput(
        task_id=f"t-{model}-{precision}", category="inference", model_name=model, precision=precision, **kw
    )  # type: ignore[arg-type]


def test_zoo_lists_its_models() -> None:
    assert model_names() == tuple(sorted(MODELS))


@pytest.mark.parametrize("name", MODELS)
def test_weights_are_seeded(name: str) -> None:
    a, b = build_model(name), build_model(name)
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
def test_inference_reports_difference_vs_fp32(ctx: HandlerContext, name: str, precision: str) -> None:
    result = inference(task(name, precision, batch_size=4, item_count=10), ctx)
    s = result.summary
    assert s["model"] == name and s["precision"] == precision
    assert s["output_shape"] == [10, 10] and s["batches"] == 3 and result.items == 10
    if precision == "fp32":
        assert s["max_abs_diff_vs_fp32"] == 0.0
    else:
        assert 0.0 < s["max_abs_diff_vs_fp32"] < 0.5
    assert s["top1_agreement_vs_fp32"] >= 0.5
    logits = torch.frombuffer(bytearray(result.inline), dtype=torch.float32).view(10, 10)
    assert torch.isfinite(logits).all() and logits.std() > 0


def test_int8_quantises_linear_layers() -> None:
    quantised = convert_model(build_model("mlp"), "int8", "cpu")
    kinds = {type(m).__module__ for m in quantised.modules()}
    assert "torch.ao.nn.quantized.dynamic.modules.linear" in kinds
    assert not any(type(m) is torch.nn.Linear for m in quantised.modules())


def test_models_stay_warm_in_the_cache(ctx: HandlerContext) -> None:
    inference(task("mlp", "bf16"), ctx)
    misses = ctx.models.misses
    inference(task("mlp", "bf16"), ctx)
    assert ctx.models.misses == misses and ("mlp", "bf16", "cpu") in ctx.models


def test_fp16_on_cpu_is_unsupported(ctx: HandlerContext) -> None:
    with pytest.raises(HandlerError) as err:
        inference(task("mlp", "fp16"), ctx)
    assert err.value.reason == "UNSUPPORTED_PRECISION"


def test_unknown_model_is_refused(ctx: HandlerContext) -> None:
    with pytest.raises(HandlerError) as err:
        inference(task("gpt-17", "fp32"), ctx)
    assert err.value.reason == "UNKNOWN_MODEL"


def test_large_outputs_go_to_an_artifact(ctx: HandlerContext) -> None:
    result = inference(task("mlp", "fp32", batch_size=850, item_count=1700), ctx)
    assert result.inline == b"" and Path(result.artifact_path).is_file()
    assert torch.load(result.artifact_path, weights_only=True).shape == (1700, 10)


def test_inputs_match_model_specs() -> None:
    gen = torch.Generator().manual_seed(0)
    assert ZOO["transformer_encoder"].make_input(2, gen).dtype == torch.int64
    assert ZOO["resnet_small"].make_input(2, gen).shape == (2, 3, 32, 32)
