"""Handlers produce real outputs; the registry and the slot's task runner fail cleanly."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from services.worker.handlers import BUILTINS, HandlerContext, HandlerRegistry
from services.worker.handlers.png import encode_png
from services.worker.handlers.render import boxes_from_masks, shape_mask
from services.worker.handlers.synthetic import write_contact_sheet
from services.worker.model import HandlerError, HandlerResult, TaskInput
from services.worker.slot_process import run_task

CATEGORIES = {
    "generate_source_assets",
    "ingest_source_assets",
    "identify_variation_parameters",
    "vary_variation_parameters",
    "create_synthetic_data",
    "inference",
    "preprocess",
    "training_step",
    "noop",
}


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """As in a slot process (and this machine is small and shared)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def ctx(tmp_path: Path) -> HandlerContext:
    return HandlerContext(device="cpu", artifact_dir=tmp_path)


@pytest.fixture(scope="module")
def registry() -> HandlerRegistry:
    return HandlerRegistry.default(["echo=tests.unit.test_worker_handlers:echo"])


def echo(task: TaskInput, ctx: HandlerContext) -> HandlerResult:
    return HandlerResult(summary={"parameters": task.parameters}, inline=task.data, items=1)


def big_inline(task: TaskInput, ctx: HandlerContext) -> HandlerResult:
    return HandlerResult(inline=b"x" * (70 * 1024))


def run(registry: HandlerRegistry, ctx: HandlerContext, category: str, **kw: Any) -> HandlerResult:
    return registry.get(category)(TaskInput(task_id=f"t-{category}", category=category, **kw), ctx)  # type: ignore[arg-type]


def test_registry_has_every_builtin_and_extra_handlers(registry: HandlerRegistry) -> None:
    assert set(BUILTINS) == CATEGORIES
    assert CATEGORIES | {"echo"} == set(registry.names())
    for name in registry.names():
        assert callable(registry.get(name))


def test_unknown_category_fails_cleanly(registry: HandlerRegistry, ctx: HandlerContext) -> None:
    with pytest.raises(HandlerError) as err:
        registry.get("paint_the_fence")
    assert err.value.reason == "UNKNOWN_CATEGORY"
    reply = run_task(registry, ctx, TaskInput(task_id="t1", category="paint_the_fence"))
    assert reply.result is None and reply.failure is not None
    assert reply.failure.reason == "UNKNOWN_CATEGORY"


def test_unloadable_handler_is_an_unknown_category(ctx: HandlerContext) -> None:
    broken = HandlerRegistry({"x": "no.such.module:fn"})
    reply = run_task(broken, ctx, TaskInput(task_id="t1", category="x"))
    assert reply.failure is not None and reply.failure.reason == "UNKNOWN_CATEGORY"


def test_handler_exception_becomes_handler_error(ctx: HandlerContext) -> None:
    registry = HandlerRegistry({"boom": "tests.unit.test_worker_handlers:boom"})
    reply = run_task(registry, ctx, TaskInput(task_id="t1", category="boom"))
    assert reply.failure is not None
    assert (reply.failure.reason, reply.failure.message) == ("HANDLER_ERROR", "no such luck")


def boom(task: TaskInput, ctx: HandlerContext) -> HandlerResult:
    raise ValueError("no such luck")


def test_oversized_inline_result_moves_to_a_file(ctx: HandlerContext) -> None:
    registry = HandlerRegistry({"big": "tests.unit.test_worker_handlers:big_inline"})
    reply = run_task(registry, ctx, TaskInput(task_id="t1", category="big"))
    assert reply.result is not None and reply.result.inline == b""
    assert Path(reply.result.artifact_path).stat().st_size == 70 * 1024


def test_synthetic_pipeline_through_datablocks(registry: HandlerRegistry, ctx: HandlerContext) -> None:
    gen = run(registry, ctx, "generate_source_assets", item_count=6, outputs=("assets",))
    assert gen.summary["count"] == 6 and 0 < gen.summary["mean_coverage"] < 1
    ing = run(registry, ctx, "ingest_source_assets", inputs=("assets",), outputs=("clean",))
    assert ing.summary["accepted"] == 6 and ing.summary["rejected"] == 0
    ident = run(registry, ctx, "identify_variation_parameters", inputs=("clean",), outputs=("space",))
    space = ident.summary["parameters"]
    assert set(space) >= {"rotation", "scale", "brightness", "hue_shift", "background", "noise_std"}
    assert all(lo <= hi for lo, hi in space.values())
    vary = run(
        registry, ctx, "vary_variation_parameters", item_count=20, inputs=("space",), outputs=("vars",)
    )
    for name, stat in vary.summary["stats"].items():
        assert space[name][0] <= stat["min"] <= stat["max"] <= space[name][1]
    assert {p.stem for p in ctx.blocks.glob("*.pt")} == {"assets", "clean", "space", "vars"}
    uri = Path(ctx.datablock_path("clean")).resolve().as_uri()
    made = run(registry, ctx, "create_synthetic_data", item_count=10, inputs=(uri, "vars"))
    assert made.summary["count"] == 10 and made.items == 10


def test_rendered_images_are_real_and_masks_match_boxes(
    registry: HandlerRegistry, ctx: HandlerContext
) -> None:
    result = run(
        registry,
        ctx,
        "create_synthetic_data",
        item_count=12,
        batch_size=5,
        parameters={"contact_sheet": True},
    )
    data = torch.load(result.artifact_path, weights_only=True)
    images, masks, boxes = data["images"], data["masks"], data["boxes"]
    assert images.shape == (12, 3, 64, 64) and images.dtype == torch.uint8
    assert masks.shape == (12, 64, 64) and data["labels"].shape == (12,)
    for img in images:
        assert img.float().std() > 5  # not a constant image
    assert torch.equal(boxes, boxes_from_masks(masks))
    for mask, (x0, y0, x1, y1) in zip(masks, boxes.tolist(), strict=True):
        assert mask.any()
        assert mask[y0 : y1 + 1, x0 : x1 + 1].sum() == mask.sum()
        assert mask[y0, x0 : x1 + 1].any() and mask[y1, x0 : x1 + 1].any()
    assert sum(result.summary["label_counts"].values()) == 12
    assert Path(result.summary["contact_sheet"]).read_bytes().startswith(b"\x89PNG")


def test_synthetic_output_is_seeded(registry: HandlerRegistry, ctx: HandlerContext) -> None:
    a = run(registry, ctx, "create_synthetic_data", item_count=4, parameters={"seed": 7})
    first = torch.load(a.artifact_path, weights_only=True)["images"]
    b = run(registry, ctx, "create_synthetic_data", item_count=4, parameters={"seed": 7})
    assert torch.equal(first, torch.load(b.artifact_path, weights_only=True)["images"])


def test_bad_parameters_are_invalid_input(registry: HandlerRegistry, ctx: HandlerContext) -> None:
    with pytest.raises(HandlerError) as err:
        run(registry, ctx, "create_synthetic_data", item_count=10**7)
    assert err.value.reason == "INVALID_INPUT"
    with pytest.raises(HandlerError) as err:
        run(registry, ctx, "ingest_source_assets", inputs=("missing-block",))
    assert err.value.reason == "INPUT_NOT_FOUND" and "missing-block" in err.value.message


def _png_pixels(data: bytes) -> tuple[int, int, bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    idat, pos = b"", 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    return width, height, zlib.decompress(idat)


def test_png_round_trips_pixels() -> None:
    rgb = torch.randint(0, 256, (5, 7, 3), dtype=torch.uint8)
    width, height, raw = _png_pixels(encode_png(rgb))
    assert (width, height) == (7, 5)
    rows = [raw[y * (1 + 21) + 1 : (y + 1) * (1 + 21)] for y in range(5)]
    assert b"".join(rows) == rgb.numpy().tobytes()


def test_contact_sheet_tiles_images(tmp_path: Path) -> None:
    images = torch.rand(5, 3, 16, 16)
    path = write_contact_sheet(images, tmp_path / "sheet.png")
    width, height, _ = _png_pixels(path.read_bytes())
    assert (width, height) == (3 * 18 + 2, 2 * 18 + 2)


def test_shape_masks_are_distinct() -> None:
    masks = [shape_mask(k, 32) for k in ("circle", "square", "triangle", "ring")]
    assert all(0.05 < float(m.mean()) < 0.9 for m in masks)
    assert len({float(m.sum()) for m in masks}) == 4


def test_preprocess_normalises_an_augmented_batch(registry: HandlerRegistry, ctx: HandlerContext) -> None:
    raw = torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8)
    result = run(
        registry, ctx, "preprocess", data=raw.numpy().tobytes(), parameters={"shape": [6, 3, 16, 16]}
    )
    s = result.summary
    assert s["shape"] == [6, 3, 16, 16] and s["items"] == 6
    assert abs(s["mean_after"]) < 1e-3 and abs(s["std_after"] - 1) < 0.05
    tensor = torch.load(result.artifact_path, weights_only=True)["tensor"]
    assert tensor.shape == (6, 3, 16, 16)
    with pytest.raises(HandlerError):
        run(registry, ctx, "preprocess", data=b"123", parameters={"shape": [6, 3, 16, 16]})


@pytest.mark.parametrize(("model", "precision"), [("mlp", "fp32"), ("resnet_small", "bf16")])
def test_training_step_lowers_the_loss(
    registry: HandlerRegistry, ctx: HandlerContext, model: str, precision: str
) -> None:
    result = run(
        registry, ctx, "training_step", model_name=model, precision=precision, parameters={"steps": 4}
    )
    s = result.summary
    assert len(s["losses"]) == 4 and s["final_loss"] < s["initial_loss"]
    assert result.items == 4 * 16


def test_training_step_leaves_the_cached_model_alone(registry: HandlerRegistry, ctx: HandlerContext) -> None:
    run(registry, ctx, "training_step", model_name="mlp")
    cached = ctx.models.get(("mlp", "fp32", "cpu"), lambda: None)
    from services.worker.models import build_model

    for a, b in zip(cached.state_dict().values(), build_model("mlp").state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_noop_does_nothing_quickly(registry: HandlerRegistry, ctx: HandlerContext) -> None:
    assert run(registry, ctx, "noop", item_count=5).items == 5
