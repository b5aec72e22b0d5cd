"""Builders for `TaskSpec` and `SplitRequest` messages, and parsers for enum names.

    from switchyard import specs
    specs.inference("resnet_small", precision="bf16", batch_size=16, qos="latency_critical")
    specs.split(specs.create_synthetic_data(), total_items=24, batch_size=8)

Enum arguments take short names ("fp32", "bf16", "latency_critical", "expire") in any case,
or the full proto names ("PRECISION_FP32"). Bad names raise ValueError.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf import json_format

from switchyard.v1 import classifier_pb2, types_pb2

TERMINAL_STATES = frozenset(
    {
        types_pb2.TASK_STATE_SUCCEEDED,
        types_pb2.TASK_STATE_FAILED,
        types_pb2.TASK_STATE_CANCELLED,
        types_pb2.TASK_STATE_EXPIRED,
    }
)


def _enum_value(enum: Any, prefix: str, name: str | int) -> int:
    if isinstance(name, int):
        return name
    key = name.strip().upper().replace("-", "_")
    full = key if key.startswith(prefix) else prefix + key
    try:
        return int(enum.Value(full))
    except ValueError:
        names = [v.name[len(prefix) :].lower() for v in enum.DESCRIPTOR.values]
        choices = ", ".join(n for n in names if n != "unspecified")
        raise ValueError(f"unknown {prefix.rstrip('_').lower()} {name!r} (choose from {choices})") from None


def enum_name(enum: Any, prefix: str, value: int) -> str:
    """`PRECISION_BF16` → "BF16"; unknown numbers print as digits."""
    try:
        return str(enum.Name(value)).removeprefix(prefix)
    except ValueError:
        return str(value)


def parse_precision(name: str | int) -> types_pb2.Precision.ValueType:
    return types_pb2.Precision.ValueType(_enum_value(types_pb2.Precision, "PRECISION_", name))


def parse_qos_class(name: str | int) -> types_pb2.QosClass.ValueType:
    return types_pb2.QosClass.ValueType(_enum_value(types_pb2.QosClass, "QOS_CLASS_", name))


def parse_deadline_miss(name: str | int) -> types_pb2.DeadlineMissPolicy.ValueType:
    value = _enum_value(types_pb2.DeadlineMissPolicy, "DEADLINE_MISS_POLICY_", name)
    return types_pb2.DeadlineMissPolicy.ValueType(value)


def parse_task_state(name: str | int) -> types_pb2.TaskState.ValueType:
    return types_pb2.TaskState.ValueType(_enum_value(types_pb2.TaskState, "TASK_STATE_", name))


def task(
    category: str,
    *,
    model: str = "",
    model_version: str = "",
    precision: str | int | None = None,
    min_precision: str | int | None = None,
    batch_size: int = 0,
    items: int = 0,
    params: Mapping[str, Any] | None = None,
    data: bytes = b"",
    inputs: Iterable[str | types_pb2.DatablockRef] = (),
    outputs: Iterable[str | types_pb2.DatablockRef] = (),
    depends_on: Iterable[str] = (),
    qos: str | int | None = None,
    deadline: dt.datetime | None = None,
    latency_target: float | None = None,
    on_deadline_miss: str | int | None = None,
    labels: Mapping[str, str] | None = None,
    idempotency_key: str = "",
    timeout: float | None = None,
    gpu_count: float = 0.0,
) -> types_pb2.TaskSpec:
    """A TaskSpec of any category; `latency_target` and `timeout` are in seconds.

    `inputs` and `outputs` are datablocks, by id (or file:// URI) or as DatablockRef.
    """
    spec = types_pb2.TaskSpec(
        category=category,
        batch_size=batch_size,
        item_count=items,
        data=data,
        inputs=[_datablock(b) for b in inputs],
        outputs=[_datablock(b) for b in outputs],
        depends_on=list(depends_on),
        labels=dict(labels or {}),
        idempotency_key=idempotency_key,
    )
    if model or model_version:
        spec.model.name, spec.model.version = model, model_version
    if precision is not None:
        spec.precision = parse_precision(precision)
    if min_precision is not None:
        spec.min_precision = parse_precision(min_precision)
    if params:
        spec.parameters.update(dict(params))
    if gpu_count:
        spec.resources.gpu_count = gpu_count
    if timeout is not None:
        spec.timeout.FromTimedelta(dt.timedelta(seconds=timeout))
    _set_qos(spec.qos, qos, deadline, latency_target, on_deadline_miss)
    return spec


def _datablock(block: str | types_pb2.DatablockRef) -> types_pb2.DatablockRef:
    if isinstance(block, types_pb2.DatablockRef):
        return block
    if "://" in block:
        return types_pb2.DatablockRef(uri=block)
    return types_pb2.DatablockRef(id=block)


def _set_qos(
    out: types_pb2.Qos,
    qos: str | int | None,
    deadline: dt.datetime | None,
    latency_target: float | None,
    on_deadline_miss: str | int | None,
) -> None:
    if qos is not None:
        out.qos_class = parse_qos_class(qos)
    if deadline is not None:
        out.deadline.FromDatetime(deadline.astimezone(dt.UTC))
    if latency_target is not None:
        out.latency_target.FromTimedelta(dt.timedelta(seconds=latency_target))
    if on_deadline_miss is not None:
        out.on_deadline_miss = parse_deadline_miss(on_deadline_miss)


def inference(
    model: str = "mlp", *, precision: str | int = "fp32", batch_size: int = 8, **options: Any
) -> types_pb2.TaskSpec:
    """Run a model of the built-in zoo ("mlp", "resnet_small", "transformer_encoder")."""
    return task("inference", model=model, precision=precision, batch_size=batch_size, **options)


def create_synthetic_data(*, items: int = 8, batch_size: int = 8, **options: Any) -> types_pb2.TaskSpec:
    """Render `items` synthetic images (assets x variations) in batches of `batch_size`."""
    return task("create_synthetic_data", items=items, batch_size=batch_size, **options)


def generate_source_assets(*, items: int = 4, **options: Any) -> types_pb2.TaskSpec:
    return task("generate_source_assets", items=items, **options)


def ingest_source_assets(*, items: int = 4, **options: Any) -> types_pb2.TaskSpec:
    return task("ingest_source_assets", items=items, **options)


def identify_variation_parameters(**options: Any) -> types_pb2.TaskSpec:
    return task("identify_variation_parameters", **options)


def vary_variation_parameters(*, items: int = 4, **options: Any) -> types_pb2.TaskSpec:
    return task("vary_variation_parameters", items=items, **options)


def preprocess(*, batch_size: int = 32, **options: Any) -> types_pb2.TaskSpec:
    return task("preprocess", batch_size=batch_size, **options)


def training_step(model: str = "mlp", *, batch_size: int = 16, **options: Any) -> types_pb2.TaskSpec:
    return task("training_step", model=model, batch_size=batch_size, **options)


def noop(**options: Any) -> types_pb2.TaskSpec:
    """A task that does nothing: measures the scheduler, not the workload."""
    return task("noop", **options)


def split(template: types_pb2.TaskSpec, *, total_items: int, batch_size: int) -> types_pb2.SplitRequest:
    """Ask the classifier to split `total_items` into ceil(total/batch) tasks like `template`."""
    return types_pb2.SplitRequest(template=template, total_items=total_items, batch_size=batch_size)


def submit_request_from_json(document: Any) -> classifier_pb2.SubmitTasksRequest:
    """Parse proto-JSON (as grpcurl takes it): a TaskSpec, a list of them, or a SubmitTasksRequest."""
    if isinstance(document, list):
        document = {"tasks": document}
    elif isinstance(document, dict) and not {"tasks", "split"} & document.keys():
        document = {"tasks": [document]}
    if not isinstance(document, dict):
        raise ValueError("a spec file holds a task spec, a list of task specs, or {tasks, split}")
    request = classifier_pb2.SubmitTasksRequest()
    try:
        json_format.ParseDict(document, request)
    except json_format.ParseError as exc:
        raise ValueError(f"bad spec: {exc}") from None
    return request
