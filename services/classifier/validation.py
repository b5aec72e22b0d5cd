"""Request validation: small validators that collect every problem into one BadRequest.

Each validator looks at one aspect of a `TaskSpec` and adds violations with full field
paths (`tasks[3].batch_size`, `split.template.precision`); nothing stops at the first one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from google.protobuf import duration_pb2, struct_pb2

from common.errors import QuotaViolation, ResourceExhausted, Violations
from services.classifier.model import Precision
from services.classifier.rules import Catalogue, split_count
from switchyard.v1 import classifier_pb2, types_pb2

MAX_LABELS = 64
MAX_LABEL_KEY = 63
MAX_LABEL_VALUE = 256
MAX_IDEMPOTENCY_KEY = 128
MAX_ID = 128  # the scheduler stores ids of at most 128 characters
# Ids are printable ASCII without spaces; keys may be any text but control characters
# (PostgreSQL text cannot hold NUL, and neither belongs in a key).
ID_RE = re.compile(rf"^[\x21-\x7e]{{1,{MAX_ID}}}$")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
ID_RULE = f"must be 1 to {MAX_ID} printable ASCII characters without spaces"
# Higher is more exact; the lowest acceptable precision must not rank above the wanted one.
PRECISION_RANK = {Precision.FP32: 3, Precision.BF16: 2, Precision.FP16: 2, Precision.INT8: 1}
# Enum values as plain ints, built once: every spec of every submit is checked against them.
PRECISIONS = frozenset(p.value for p in Precision)
QOS_CLASSES = frozenset(types_pb2.QosClass.values())
DEADLINE_MISS_POLICIES = frozenset(types_pb2.DeadlineMissPolicy.values())


MAX_DEPENDS_ON = 1000
MAX_DATABLOCKS = 1000
MAX_MODEL_NAME = 128
MAX_PARAMETER_DEPTH = 16
# google.protobuf.Timestamp and Duration ranges (0001-01-01 to 9999-12-31; ±10,000 years).
TIMESTAMP_SECONDS = (-62_135_596_800, 253_402_300_799)
DURATION_SECONDS = 315_576_000_000


@dataclass(frozen=True)
class Limits:
    max_tasks_per_submit: int = 10000
    max_task_data_bytes: int = 1048576
    max_task_parameters_bytes: int = 65536
    # The whole submit with its split expanded: keeps the scheduler hop and the reply
    # (which echoes every task) well under the 32 MiB gRPC message limit.
    max_submit_bytes: int = 16 * 1048576


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
    check_duration(spec.timeout, f"{path}.timeout", v)
    if len(spec.model.name) > MAX_MODEL_NAME or len(spec.model.version) > MAX_MODEL_NAME:
        v.add(f"{path}.model", f"name and version must be at most {MAX_MODEL_NAME} characters")


def check_resources(spec: types_pb2.TaskSpec, path: str, ctx: Context, v: Violations) -> None:
    if not spec.HasField("resources"):
        return  # every field at its default: valid
    res = spec.resources
    for name, value in (("cpu_cores", res.cpu_cores), ("gpu_count", res.gpu_count)):
        if not math.isfinite(value) or value < 0:
            v.add(f"{path}.resources.{name}", f"must be a finite number ≥ 0 (got {value})")
    for name, count in (("memory_bytes", res.memory_bytes), ("gpu_memory_bytes", res.gpu_memory_bytes)):
        if count < 0:
            v.add(f"{path}.resources.{name}", f"must not be negative (got {count})")


def check_precision(spec: types_pb2.TaskSpec, path: str, ctx: Context, v: Violations) -> None:
    precision, min_precision = spec.precision, spec.min_precision
    if not min_precision and precision in PRECISIONS:
        return  # the usual spec: no lower bound to compare
    for name, value in (("precision", precision), ("min_precision", min_precision)):
        if value not in PRECISIONS:
            v.add(f"{path}.{name}", f"unknown precision {value}")
    if precision in PRECISIONS and min_precision in PRECISIONS:
        want, low = Precision(precision), Precision(min_precision)
        if want and low and PRECISION_RANK[low] > PRECISION_RANK[want]:
            v.add(f"{path}.min_precision", f"{low.name} is above the wanted precision {want.name}")


def check_qos(spec: types_pb2.TaskSpec, path: str, ctx: Context, v: Violations) -> None:
    if not spec.HasField("qos"):
        return  # every field at its default: valid
    qos = spec.qos
    if qos.qos_class not in QOS_CLASSES:
        v.add(f"{path}.qos.qos_class", f"unknown QoS class {qos.qos_class}")
    if qos.on_deadline_miss not in DEADLINE_MISS_POLICIES:
        v.add(f"{path}.qos.on_deadline_miss", f"unknown policy {qos.on_deadline_miss}")
    check_duration(qos.latency_target, f"{path}.qos.latency_target", v)
    low, high = TIMESTAMP_SECONDS
    if not low <= qos.deadline.seconds <= high or not 0 <= qos.deadline.nanos < 1_000_000_000:
        v.add(f"{path}.qos.deadline", "must be a valid timestamp from year 1 to 9999")


def check_duration(value: duration_pb2.Duration, path: str, v: Violations) -> None:
    if value.seconds < 0 or value.nanos < 0:
        v.add(path, "must not be negative")
    elif value.seconds > DURATION_SECONDS or value.nanos >= 1_000_000_000:
        v.add(path, f"must be a valid duration of at most {DURATION_SECONDS} seconds")


def check_references(spec: types_pb2.TaskSpec, path: str, ctx: Context, v: Violations) -> None:
    if not (spec.depends_on or spec.inputs or spec.outputs):
        return
    if len(spec.depends_on) > MAX_DEPENDS_ON:
        v.add(f"{path}.depends_on", f"{len(spec.depends_on)} ids is over the limit of {MAX_DEPENDS_ON}")
        return
    for i, dep in enumerate(spec.depends_on):
        if not ID_RE.match(dep):
            v.add(f"{path}.depends_on[{i}]", f"a task id {ID_RULE}")
    for kind, blocks in (("inputs", spec.inputs), ("outputs", spec.outputs)):
        if len(blocks) > MAX_DATABLOCKS:
            v.add(f"{path}.{kind}", f"{len(blocks)} datablocks is over the limit of {MAX_DATABLOCKS}")
            continue
        for i, block in enumerate(blocks):
            if not block.id or len(block.id) > MAX_ID:
                v.add(f"{path}.{kind}[{i}].id", f"must be 1 to {MAX_ID} characters")
            if block.size_bytes < 0:
                v.add(f"{path}.{kind}[{i}].size_bytes", "must not be negative")


def check_labels(spec: types_pb2.TaskSpec, path: str, ctx: Context, v: Violations) -> None:
    if not (spec.labels or spec.idempotency_key):
        return
    if len(spec.labels) > MAX_LABELS:
        v.add(f"{path}.labels", f"{len(spec.labels)} labels is over the limit of {MAX_LABELS}")
    for key, value in sorted(spec.labels.items()):
        if not key or len(key) > MAX_LABEL_KEY:
            v.add(f"{path}.labels[{key[:40]!r}]", f"keys must be 1 to {MAX_LABEL_KEY} characters")
        elif len(value) > MAX_LABEL_VALUE:
            v.add(f"{path}.labels[{key!r}]", f"values must be at most {MAX_LABEL_VALUE} characters")
    key = spec.idempotency_key
    if len(key) > MAX_IDEMPOTENCY_KEY or CONTROL_RE.search(key):
        v.add(f"{path}.idempotency_key", f"must be at most {MAX_IDEMPOTENCY_KEY} characters, none a control")


def check_parameters(spec: types_pb2.TaskSpec, path: str, ctx: Context, v: Violations) -> None:
    """JSON-like parameters: at most MAX_PARAMETER_DEPTH levels, finite numbers only."""
    if not spec.HasField("parameters"):
        return
    problems: set[str] = set()
    stack: list[tuple[struct_pb2.Value, int]] = [(value, 1) for value in spec.parameters.fields.values()]
    while stack and not problems >= {"depth", "number"}:
        value, depth = stack.pop()
        kind = value.WhichOneof("kind")
        if kind == "number_value" and not math.isfinite(value.number_value):
            problems.add("number")
        elif kind in ("struct_value", "list_value"):
            if depth >= MAX_PARAMETER_DEPTH:
                problems.add("depth")
                continue
            children = (
                value.struct_value.fields.values() if kind == "struct_value" else value.list_value.values
            )
            stack.extend((child, depth + 1) for child in children)
    if "depth" in problems:
        v.add(f"{path}.parameters", f"nested deeper than {MAX_PARAMETER_DEPTH} levels")
    if "number" in problems:
        v.add(f"{path}.parameters", "numbers must be finite (no NaN or infinity)")


VALIDATORS: tuple[Validator, ...] = (
    check_category,
    check_sizes,
    check_resources,
    check_precision,
    check_qos,
    check_references,
    check_labels,
    check_parameters,
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
    # Each batch gets the key "<key>#<index>", which must still fit.
    suffix = len(f"#{max(split_count(split.total_items, split.batch_size) - 1, 0)}")
    key = split.template.idempotency_key
    if key and len(key) <= MAX_IDEMPOTENCY_KEY < len(key) + suffix:
        v.add(
            "split.template.idempotency_key",
            f"must be at most {MAX_IDEMPOTENCY_KEY - suffix} characters (each batch adds '#<index>')",
        )


def task_count(request: classifier_pb2.SubmitTasksRequest) -> int:
    split = (
        split_count(request.split.total_items, request.split.batch_size) if request.HasField("split") else 0
    )
    return len(request.tasks) + split


def check_submit_size(request: classifier_pb2.SubmitTasksRequest, limits: Limits) -> None:
    """An oversized submit, task payload or parameters is RESOURCE_EXHAUSTED, before any
    other check: every limit it breaks is listed in one QuotaFailure."""
    quota: list[QuotaViolation] = []
    count = task_count(request)
    if count > limits.max_tasks_per_submit:
        quota.append(
            QuotaViolation("tasks", f"{count} tasks; at most {limits.max_tasks_per_submit} per submit")
        )
    data_limit = limits.max_task_data_bytes
    for i, spec in enumerate(request.tasks):
        if len(spec.data) > data_limit or spec.HasField("parameters"):
            _check_payload(spec, f"tasks[{i}]", limits, quota)
    if request.HasField("split"):
        _check_payload(request.split.template, "split.template", limits, quota)
    if not quota:
        # Only now is the expanded size cheap to compute and meaningful.
        split_tasks = count - len(request.tasks)
        size = request.ByteSize() + split_tasks * (request.split.template.ByteSize() + 16)
        if size > limits.max_submit_bytes:
            quota.append(
                QuotaViolation(
                    "submit", f"{size} bytes with the split expanded; at most {limits.max_submit_bytes}"
                )
            )
    if quota:
        raise ResourceExhausted(
            "the submit is over the size limits: "
            + "; ".join(f"{q.subject}: {q.description}" for q in quota[:5]),
            quota,
            reason="SUBMIT_TOO_LARGE" if count <= limits.max_tasks_per_submit else "TOO_MANY_TASKS",
        )


def _check_payload(spec: types_pb2.TaskSpec, path: str, limits: Limits, quota: list[QuotaViolation]) -> None:
    if len(spec.data) > limits.max_task_data_bytes:
        quota.append(
            QuotaViolation(f"{path}.data", f"{len(spec.data)} bytes; at most {limits.max_task_data_bytes}")
        )
    if spec.HasField("parameters"):
        size = spec.parameters.ByteSize()
        if size > limits.max_task_parameters_bytes:
            limit = limits.max_task_parameters_bytes
            quota.append(QuotaViolation(f"{path}.parameters", f"{size} bytes; at most {limit}"))


def check_ids(field: str, ids: Sequence[str], v: Violations, *, limit: int, required: bool = True) -> None:
    """Ids of a read or cancel: present (when required), at most `limit`, each non-empty."""
    if required and not ids:
        v.add(field, "give at least one id")
    if len(ids) > limit:
        v.add(field, f"{len(ids)} ids is over the limit of {limit}")
    for i, value in enumerate(ids[:limit]):
        if not ID_RE.match(value):
            v.add(f"{field}[{i}]", ID_RULE)


def check_required(field: str, value: str, v: Violations) -> None:
    if not value:
        v.add(field, "required")
    elif not ID_RE.match(value):
        v.add(field, ID_RULE)
