"""Request validation: small validators that collect every problem into one BadRequest.

Each validator looks at one aspect of a `TaskSpec` and adds violations with full field
paths (`tasks[3].batch_size`, `split.template.precision`); nothing stops at the first one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from common.errors import QuotaViolation, ResourceExhausted, Violations
from services.classifier.model import Precision
from services.classifier.rules import Catalogue, split_count
from switchyard.v1 import classifier_pb2, types_pb2

MAX_LABELS = 64
MAX_LABEL_KEY = 63
MAX_LABEL_VALUE = 256
MAX_IDEMPOTENCY_KEY = 128
MAX_ID = 256
# Higher is more exact; the lowest acceptable precision must not rank above the wanted one.
PRECISION_RANK = {Precision.FP32: 3, Precision.BF16: 2, Precision.FP16: 2, Precision.INT8: 1}


@dataclass(frozen=True)
class Limits:
    max_tasks_per_submit: int = 10000
    max_task_data_bytes: int = 1048576


@dataclass(frozen=True)
class Context:
    catalogue: Catalogue
    limits: Limits


Validator = Callable[[types_pb2.TaskSpec, str, Context, Violations], None]


def check_category(spec: types_pb2.TaskSpec, path: str, ctx: Context, v: Violations) -> None:
    if not spec.category:
        v.add(f"{path}.category", "required; one of " + ", ".join(ctx.catalogue.names()))
    elif ctx.catalogue.get(spec.category) is None:
        v.add(
            f"{path}.category",
            f"unknown category {spec.category[:80]!r}; known: {', '.join(ctx.catalogue.names())}",
        )


def check_sizes(spec: types_pb2.TaskSpec, path: str, ctx: Context, v: Violations) -> None:
    if spec.batch_size < 0:
        v.add(f"{path}.batch_size", f"must not be negative (got {spec.batch_size})")
    if spec.item_count < 0:
        v.add(f"{path}.item_count", f"must not be negative (got {spec.item_count})")
    if len(spec.data) > ctx.limits.max_task_data_bytes:
        v.add(f"{path}.data", f"{len(spec.data)} bytes is over the limit of {ctx.limits.max_task_data_bytes}")
    if spec.timeout.seconds < 0 or spec.timeout.nanos < 0:
        v.add(f"{path}.timeout", "must not be negative")


def check_resources(spec: types_pb2.TaskSpec, path: str, ctx: Context, v: Violations) -> None:
    res = spec.resources
    for name, value in (("cpu_cores", res.cpu_cores), ("gpu_count", res.gpu_count)):
        if not math.isfinite(value) or value < 0:
            v.add(f"{path}.resources.{name}", f"must be a finite number ≥ 0 (got {value})")
    for name, count in (("memory_bytes", res.memory_bytes), ("gpu_memory_bytes", res.gpu_memory_bytes)):
        if count < 0:
            v.add(f"{path}.resources.{name}", f"must not be negative (got {count})")


def check_precision(spec: types_pb2.TaskSpec, path: str, ctx: Context, v: Violations) -> None:
    valid = {p.value for p in Precision}
    for name, value in (("precision", spec.precision), ("min_precision", spec.min_precision)):
        if value not in valid:
            v.add(f"{path}.{name}", f"unknown precision {value}")
    if spec.precision in valid and spec.min_precision in valid:
        want, low = Precision(spec.precision), Precision(spec.min_precision)
        if want and low and PRECISION_RANK[low] > PRECISION_RANK[want]:
            v.add(f"{path}.min_precision", f"{low.name} is above the wanted precision {want.name}")


def check_qos(spec: types_pb2.TaskSpec, path: str, ctx: Context, v: Violations) -> None:
    qos = spec.qos
    if qos.qos_class not in types_pb2.QosClass.values():
        v.add(f"{path}.qos.qos_class", f"unknown QoS class {qos.qos_class}")
    if qos.on_deadline_miss not in types_pb2.DeadlineMissPolicy.values():
        v.add(f"{path}.qos.on_deadline_miss", f"unknown policy {qos.on_deadline_miss}")
    if qos.latency_target.seconds < 0 or qos.latency_target.nanos < 0:
        v.add(f"{path}.qos.latency_target", "must not be negative")


def check_references(spec: types_pb2.TaskSpec, path: str, ctx: Context, v: Violations) -> None:
    for i, dep in enumerate(spec.depends_on):
        if not dep.strip() or len(dep) > MAX_ID:
            v.add(f"{path}.depends_on[{i}]", f"must be a task id of 1 to {MAX_ID} characters")
    for kind, blocks in (("inputs", spec.inputs), ("outputs", spec.outputs)):
        for i, block in enumerate(blocks):
            if not block.id or len(block.id) > MAX_ID:
                v.add(f"{path}.{kind}[{i}].id", f"must be 1 to {MAX_ID} characters")
            if block.size_bytes < 0:
                v.add(f"{path}.{kind}[{i}].size_bytes", "must not be negative")


def check_labels(spec: types_pb2.TaskSpec, path: str, ctx: Context, v: Violations) -> None:
    if len(spec.labels) > MAX_LABELS:
        v.add(f"{path}.labels", f"{len(spec.labels)} labels is over the limit of {MAX_LABELS}")
    for key, value in sorted(spec.labels.items()):
        if not key or len(key) > MAX_LABEL_KEY:
            v.add(f"{path}.labels[{key[:40]!r}]", f"keys must be 1 to {MAX_LABEL_KEY} characters")
        elif len(value) > MAX_LABEL_VALUE:
            v.add(f"{path}.labels[{key!r}]", f"values must be at most {MAX_LABEL_VALUE} characters")
    if len(spec.idempotency_key) > MAX_IDEMPOTENCY_KEY:
        v.add(f"{path}.idempotency_key", f"must be at most {MAX_IDEMPOTENCY_KEY} characters")


VALIDATORS: tuple[Validator, ...] = (
    check_category,
    check_sizes,
    check_resources,
    check_precision,
    check_qos,
    check_references,
    check_labels,
)


def validate_spec(spec: types_pb2.TaskSpec, path: str, ctx: Context, v: Violations) -> None:
    for validator in VALIDATORS:
        validator(spec, path, ctx, v)


def validate_split(split: types_pb2.SplitRequest, ctx: Context, v: Violations) -> None:
    if split.total_items <= 0:
        v.add("split.total_items", f"must be positive (got {split.total_items})")
    if split.batch_size <= 0:
        v.add("split.batch_size", f"must be positive (got {split.batch_size})")
    validate_spec(split.template, "split.template", ctx, v)


def task_count(request: classifier_pb2.SubmitTasksRequest) -> int:
    split = (
        split_count(request.split.total_items, request.split.batch_size) if request.HasField("split") else 0
    )
    return len(request.tasks) + split


def check_submit_size(request: classifier_pb2.SubmitTasksRequest, limits: Limits) -> None:
    """An oversized submit is RESOURCE_EXHAUSTED, before looking at any spec."""
    count = task_count(request)
    if count > limits.max_tasks_per_submit:
        raise ResourceExhausted(
            f"{count} tasks in one submit is over the limit of {limits.max_tasks_per_submit}",
            [QuotaViolation("tasks", f"at most {limits.max_tasks_per_submit} tasks per submit")],
            reason="TOO_MANY_TASKS",
        )


def check_ids(field: str, ids: Sequence[str], v: Violations, *, limit: int, required: bool = True) -> None:
    """Ids of a read or cancel: present (when required), at most `limit`, each non-empty."""
    if required and not ids:
        v.add(field, "give at least one id")
    if len(ids) > limit:
        v.add(field, f"{len(ids)} ids is over the limit of {limit}")
    for i, value in enumerate(ids[:limit]):
        if not value or len(value) > MAX_ID:
            v.add(f"{field}[{i}]", f"must be 1 to {MAX_ID} characters")


def check_required(field: str, value: str, v: Violations) -> None:
    if not value:
        v.add(field, "required")
    elif len(value) > MAX_ID:
        v.add(field, f"must be at most {MAX_ID} characters")
