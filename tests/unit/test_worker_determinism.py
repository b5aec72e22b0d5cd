"""Every handler's outputs: shapes, dtypes, value ranges, determinism under a seed, split
tasks that differ; reduced precisions within each zoo model's stated tolerance of fp32."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from services.worker.handlers import HandlerContext, HandlerRegistry
from services.worker.handlers.context import task_seed
from services.worker.model import HandlerError, HandlerResult, TaskInput
from services.worker.models import ZOO
from services.worker.models.precision import QUANTIZATION_WARNINGS, ignore_quantization_warnings


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def registry() -> HandlerRegistry:
    return HandlerRegistry.default()


@pytest.fixture
def ctx(tmp_path: Path) -> HandlerContext:
    return HandlerContext(device="cpu", artifact_dir=tmp_path)


def run(
    registry: HandlerRegistry, ctx: HandlerContext, category: str, task_id: str = "t", **kw: Any
) -> HandlerResult:
    return registry.get(category)(TaskInput(task_id=task_id, category=category, **kw), ctx)


def tensors(result: HandlerResult) -> dict[str, Any]:
    """What a handler produced, loaded: its artifact (a .pt mapping or tensor) or inline bytes."""
    if result.artifact_path:
        data = torch.load(result.artifact_path, weights_only=True)
        return data if isinstance(data, dict) else {"tensor": data}
    return {"inline": result.inline}


def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a.keys() != b.keys():
        return False
    for key, value in a.items():
        other = b[key]
        if isinstance(value, torch.Tensor):
            if not (isinstance(other, torch.Tensor) and torch.equal(value, other)):
                return False
        elif value != other:
            return False
    return True


# category, task fields, the key of the main random output.
SEEDED = [
    ("generate_source_assets", {"item_count": 5}, "images"),
    ("vary_variation_parameters", {"item_count": 12}, "params"),
    ("create_synthetic_data", {"item_count": 6, "batch_size": 4}, "images"),
    ("inference", {"model_name": "mlp", "item_count": 4}, "inline"),
    ("preprocess", {"item_count": 5}, "tensor"),
]


@pytest.mark.parametrize(("category", "fields", "key"), SEEDED)
def test_same_seed_same_output_other_seed_other_output(
    registry: HandlerRegistry, ctx: HandlerContext, category: str, fields: dict[str, Any], key: str
) -> None:
    a = tensors(run(registry, ctx, category, "t-a", parameters={"seed": 11}, **fields))
    b = tensors(run(registry, ctx, category, "t-b", parameters={"seed": 11}, **fields))
    c = tensors(run(registry, ctx, category, "t-c", parameters={"seed": 12}, **fields))
    assert same(a, b)
    assert not same({key: a[key]}, {key: c[key]})


def test_split_tasks_of_one_request_render_different_images(
    registry: HandlerRegistry, ctx: HandlerContext
) -> None:
    def images(task_id: str, split: str | None, seed: int | None = 5) -> torch.Tensor:
        labels = {"split_index": split} if split is not None else {}
        params = {"seed": seed} if seed is not None else {}
        result = run(
            registry, ctx, "create_synthetic_data", task_id, item_count=4, labels=labels, parameters=params
        )
        out: torch.Tensor = tensors(result)["images"]
        return out

    first, second = images("t-0", "0"), images("t-1", "1")
    assert not torch.equal(first, second)
    assert torch.equal(first, images("t-0-again", "0"))  # the request is reproducible
    # Without a seed, tasks draw from their ids: distinct tasks, yet a retry repeats.
    assert not torch.equal(images("t-x", None, None), images("t-y", None, None))
    assert torch.equal(images("t-x", "2", None), images("t-x", "2", None))


def test_seed_mixing_and_validation() -> None:
    def seed(**kw: Any) -> int:
        return task_seed(TaskInput(task_id="t", category="noop", **kw))

    assert seed(parameters={"seed": 42}) == 42
    split = {seed(parameters={"seed": 42}, labels={"split_index": str(i)}) for i in range(50)}
    assert len(split) == 50 and all(0 <= s < 2**62 for s in split)
    for bad in ("abc", -1, 2**63):
        with pytest.raises(HandlerError) as err:
            seed(parameters={"seed": bad})
        assert err.value.reason == "INVALID_INPUT"


def test_synthetic_outputs_have_their_shapes_dtypes_and_ranges(
    registry: HandlerRegistry, ctx: HandlerContext
) -> None:
    assets = tensors(run(registry, ctx, "generate_source_assets", item_count=3, parameters={"size": 16}))
    assert assets["images"].shape == (3, 3, 16, 16) and assets["images"].dtype == torch.uint8
    assert assets["masks"].shape == (3, 16, 16) and assets["masks"].dtype == torch.bool
    made = tensors(
        run(registry, ctx, "create_synthetic_data", item_count=5, parameters={"image_size": 32, "seed": 1})
    )
    assert made["images"].dtype == torch.uint8 and made["images"].shape == (5, 3, 32, 32)
    assert made["boxes"].shape == (5, 4) and made["boxes"].min() >= 0 and made["boxes"].max() < 32
    assert made["labels"].dtype == torch.int64 and int(made["labels"].min()) >= 0
    assert int(made["labels"].max()) < len(made["label_names"])
    assert made["params"].shape == (5, len(made["param_names"])) and torch.isfinite(made["params"]).all()
    varied = run(registry, ctx, "vary_variation_parameters", item_count=30, parameters={"seed": 2})
    params = tensors(varied)["params"]
    assert params.dtype == torch.float32 and params.shape == (30, 9)
    for i, name in enumerate(varied.summary["names"]):
        stats = varied.summary["stats"][name]
        assert stats["min"] == pytest.approx(float(params[:, i].min()))


def test_preprocess_and_training_outputs(registry: HandlerRegistry, ctx: HandlerContext) -> None:
    pre = run(registry, ctx, "preprocess", item_count=8, parameters={"seed": 3})
    tensor = tensors(pre)["tensor"]
    assert tensor.dtype == torch.float32 and tensor.shape == (8, 3, 32, 32) and torch.isfinite(tensor).all()
    assert abs(float(tensor.mean())) < 1e-3 and float(tensor.std()) == pytest.approx(1.0, abs=0.05)
    fields: dict[str, Any] = {"model_name": "mlp", "parameters": {"seed": 4, "steps": 2}}
    a = run(registry, ctx, "training_step", **fields).summary
    b = run(registry, ctx, "training_step", **fields).summary
    assert a["losses"] == b["losses"] and all(loss > 0 for loss in a["losses"])


@pytest.mark.parametrize("name", sorted(ZOO))
def test_inference_output_shapes_dtypes_and_determinism(
    registry: HandlerRegistry, ctx: HandlerContext, name: str
) -> None:
    fields: dict[str, Any] = {"model_name": name, "item_count": 6, "batch_size": 4, "parameters": {"seed": 9}}
    first = run(registry, ctx, "inference", **fields)
    logits = torch.frombuffer(bytearray(first.inline), dtype=torch.float32).view(6, 10)
    assert torch.isfinite(logits).all() and float(logits.abs().max()) < 10
    assert first.inline == run(registry, ctx, "inference", **fields).inline


@pytest.mark.parametrize("name", sorted(ZOO))
@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_reduced_precision_is_within_the_stated_tolerance(
    registry: HandlerRegistry, ctx: HandlerContext, name: str, precision: str
) -> None:
    tolerance = ZOO[name].tolerance[precision]
    for seed in (0, 1):
        summary = run(
            registry,
            ctx,
            "inference",
            model_name=name,
            precision=precision,
            item_count=64,
            batch_size=64,
            parameters={"seed": seed},
        ).summary
        assert summary["within_tolerance"] is True, summary
        assert 0 < summary["max_abs_diff_vs_fp32"] <= tolerance.max_abs_diff
        assert summary["top1_agreement_vs_fp32"] >= tolerance.min_top1_agreement
        assert summary["tolerance_max_abs_diff"] == tolerance.max_abs_diff


def test_every_model_states_a_tolerance_for_each_reduced_precision() -> None:
    for spec in ZOO.values():
        assert set(spec.tolerance) == {"bf16", "fp16", "int8"}
        assert all(
            0 < t.max_abs_diff < 0.1 and 0.5 < t.min_top1_agreement <= 1 for t in spec.tolerance.values()
        )


def test_only_the_exact_quantisation_warnings_are_filtered() -> None:
    deprecated = "torch.ao.quantization is deprecated and will be removed in 2.10. \nFor migrations..."
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        ignore_quantization_warnings()
        warnings.warn(deprecated, DeprecationWarning, stacklevel=1)
        warnings.warn("torch.something_else is deprecated", DeprecationWarning, stacklevel=1)
        warnings.warn("an unrelated user warning", UserWarning, stacklevel=1)
        warnings.warn(deprecated, UserWarning, stacklevel=1)  # right text, wrong category
    assert [str(w.message) for w in seen] == [
        "torch.something_else is deprecated",
        "an unrelated user warning",
        deprecated,
    ]
    assert len(QUANTIZATION_WARNINGS) == 2
