"""Spec builders and enum-name parsing."""

from __future__ import annotations

import datetime as dt

import pytest

from switchyard import create_synthetic_data, inference, split, task
from switchyard.specs import parse_precision, parse_task_state, submit_request_from_json
from switchyard.v1 import types_pb2


def test_inference_builder() -> None:
    spec = inference(
        "resnet_small", precision="BF16", batch_size=4, qos="latency_critical", latency_target=0.25
    )
    assert spec.category == "inference"
    assert spec.model.name == "resnet_small"
    assert spec.precision == types_pb2.PRECISION_BF16
    assert spec.batch_size == 4
    assert spec.qos.qos_class == types_pb2.QOS_CLASS_LATENCY_CRITICAL
    assert spec.qos.latency_target.ToMilliseconds() == 250


def test_task_builder_sets_every_option() -> None:
    deadline = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    spec = task(
        "preprocess",
        params={"seed": 3, "mode": "x"},
        inputs=["blk-1", "file:///tmp/a.pt"],
        outputs=[types_pb2.DatablockRef(id="out")],
        depends_on=["task_a"],
        deadline=deadline,
        on_deadline_miss="expire",
        labels={"team": "vision"},
        timeout=5,
        min_precision="int8",
    )
    assert dict(spec.parameters) == {"seed": 3.0, "mode": "x"}
    assert [b.id for b in spec.inputs] == ["blk-1", ""]
    assert spec.inputs[1].uri == "file:///tmp/a.pt"
    assert spec.outputs[0].id == "out"
    assert list(spec.depends_on) == ["task_a"]
    assert spec.qos.deadline.ToDatetime(dt.UTC) == deadline
    assert spec.qos.on_deadline_miss == types_pb2.DEADLINE_MISS_POLICY_EXPIRE
    assert spec.timeout.seconds == 5
    assert spec.min_precision == types_pb2.PRECISION_INT8
    assert not spec.HasField("model")


def test_split_request() -> None:
    request = split(create_synthetic_data(), total_items=24, batch_size=8)
    assert (request.total_items, request.batch_size, request.template.category) == (
        24,
        8,
        "create_synthetic_data",
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [("fp32", types_pb2.PRECISION_FP32), ("PRECISION_INT8", types_pb2.PRECISION_INT8), (3, 3)],
)
def test_parse_precision(name: str | int, value: int) -> None:
    assert parse_precision(name) == value


def test_bad_enum_name_lists_choices() -> None:
    with pytest.raises(ValueError, match="choose from fp32, bf16, fp16, int8"):
        parse_precision("fp7")
    assert parse_task_state("succeeded") == types_pb2.TASK_STATE_SUCCEEDED


@pytest.mark.parametrize(
    "document",
    [
        {"category": "noop"},
        [{"category": "noop"}],
        {"tasks": [{"category": "noop"}]},
    ],
)
def test_submit_request_from_json_shapes(document: object) -> None:
    request = submit_request_from_json(document)
    assert [t.category for t in request.tasks] == ["noop"]


def test_submit_request_from_grpcurl_style_json() -> None:
    request = submit_request_from_json(
        {"tasks": [{"category": "inference", "model": {"name": "mlp"}, "batchSize": 8}],
         "split": {"template": {"category": "create_synthetic_data"}, "totalItems": 24, "batchSize": 8}}
    )  # fmt: skip
    assert request.tasks[0].batch_size == 8
    assert request.split.total_items == 24


def test_submit_request_from_bad_json() -> None:
    with pytest.raises(ValueError, match="bad spec"):
        submit_request_from_json({"tasks": [{"categoryy": "noop"}]})
