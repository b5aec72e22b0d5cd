"""The metrics of one IngestMetrics request checked as a whole: each is a domain `Metric` to
store or the `google.rpc.Status` that rejects it.

Every field of every metric is read once into a row; the rows' columns are then screened
together (one regular expression over all the names, min/max over the numbers, a finite
sum for the floats). A screen that passes proves that `validate.metric_violations` finds
nothing in any of them; one that does not sends each metric of the request through
`validate.metric_violations` (bad input is rare, and the rejections then say exactly what
they said before). The assignment tokens of the request are verified in one call
(`common.tokens.verify_assignments`), each on its own: a metric with a bad token is denied
alone, naming the field.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

from google.rpc import status_pb2

from common.errors import InvalidArgument, PermissionDenied
from common.tokens import verify_assignments
from services.profile_store import convert, validate
from services.profile_store.model import Metric, ModelRef, Outcome, Precision
from switchyard.v1 import types_pb2

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NANOS = 1_000_000_000
_SUCCEEDED = types_pb2.OUTCOME_SUCCEEDED
_PRECISION = {convert.precision_to_proto(p): p for p in Precision}
_OUTCOME = {
    types_pb2.OUTCOME_SUCCEEDED: Outcome.SUCCEEDED,
    types_pb2.OUTCOME_FAILED: Outcome.FAILED,
    types_pb2.OUTCOME_CANCELLED: Outcome.CANCELLED,
    types_pb2.OUTCOME_TIMED_OUT: Outcome.TIMED_OUT,
}
# Row layout: the names first (NAMES of them, REQUIRED of those required), then the rest.
_NAMES, _REQUIRED = 8, 6
(TASK_ID, TOKEN, WORKER, DEVICE, CATEGORY, TENANT, MODEL_NAME, MODEL_VERSION) = range(_NAMES)
(ATTEMPT, PRECISION, BATCH_SIZE, OUTCOME, HAS_EXEC, EXEC_S, EXEC_N, HAS_WAIT, WAIT_S, WAIT_N) = range(
    _NAMES, _NAMES + 10
)
(ITEMS, GPU_UTIL, CPU_UTIL, MEMORY, POWER, HAS_FINISHED, FINISHED_S, FINISHED_N) = range(
    _NAMES + 10, _NAMES + 18
)

Checked: TypeAlias = Metric | status_pb2.Status


def check_metrics(metrics: Sequence[types_pb2.ResultMetrics], secret: str) -> list[Checked]:
    """One verdict per metric, in order."""
    if not metrics:
        return []
    rows = [_row(m) for m in metrics]
    columns = list(zip(*rows, strict=True))
    signed = verify_assignments(secret, columns[TOKEN], columns[TASK_ID], columns[ATTEMPT], columns[WORKER])
    models: dict[tuple[str, str], ModelRef] = {}  # one ModelRef per model of the request
    if _clean(columns):
        return [_metric(row, models) if ok else _denied() for row, ok in zip(rows, signed, strict=True)]
    return [_check_one(m, row, ok, models) for m, row, ok in zip(metrics, rows, signed, strict=True)]


def _row(m: types_pb2.ResultMetrics) -> tuple[Any, ...]:
    """The fields of a metric in the row layout above (one flat tuple: the cheapest read)."""
    model, ex, wait, done = m.model, m.execution_time, m.queue_wait, m.finished_at
    return (
        m.task_id, m.assignment_token, m.worker_id, m.device_model, m.category, m.tenant,
        model.name, model.version, m.attempt, m.precision, m.batch_size, m.outcome,
        m.HasField("execution_time"), ex.seconds, ex.nanos,
        m.HasField("queue_wait"), wait.seconds, wait.nanos,
        m.items_per_second, m.gpu_utilization, m.cpu_utilization, m.memory_bytes, m.gpu_power_watts,
        m.HasField("finished_at"), done.seconds, done.nanos,
    )  # fmt: skip


def _clean(columns: Sequence[Sequence[Any]]) -> bool:
    """True only when `validate.metric_violations` passes every metric of the columns
    (conservative: it may say False for metrics that pass)."""
    names = columns[:_NAMES]
    if not all(all(column) for column in names[:_REQUIRED]):
        return False
    if max(max(map(len, column)) for column in names) > validate.MAX_NAME:
        return False
    if validate.CONTROL.search("".join("".join(column) for column in names)):
        return False
    outcomes = columns[OUTCOME]
    return (
        min(columns[ATTEMPT]) >= 1
        and set(columns[PRECISION]) <= validate.PRECISIONS
        and set(outcomes) <= validate.OUTCOMES
        and _within(columns[BATCH_SIZE], 0, validate.MAX_BATCH_SIZE)
        and all(
            h or o != types_pb2.OUTCOME_SUCCEEDED for h, o in zip(columns[HAS_EXEC], outcomes, strict=True)
        )
        and _within(columns[EXEC_S], 0, validate.MAX_DURATION_S)
        and _within(columns[WAIT_S], 0, validate.MAX_DURATION_S)
        and all(_within(columns[c], 0, _NANOS - 1) for c in (EXEC_N, WAIT_N, FINISHED_N))
        and _within(columns[FINISHED_S], validate.MIN_TIMESTAMP_S, validate.MAX_TIMESTAMP_S)
        and _finite_within(columns[ITEMS], math.inf)
        and _finite_within(columns[POWER], math.inf)
        and _finite_within(columns[GPU_UTIL], 1.0)
        and _finite_within(columns[CPU_UTIL], 1.0)
        and min(columns[MEMORY]) >= 0
    )


def _within(column: Sequence[int], low: int, high: int) -> bool:
    return low <= min(column) and max(column) <= high


def _finite_within(column: Sequence[float], high: float) -> bool:
    # A NaN or an infinity anywhere makes the sum non-finite (so does an overflow, which
    # only sends the request down the careful path).
    return math.isfinite(sum(column)) and min(column) >= 0 and max(column) <= high


def _check_one(
    m: types_pb2.ResultMetrics, row: tuple[Any, ...], signed: bool, models: dict[tuple[str, str], ModelRef]
) -> Checked:
    violations = validate.metric_violations(m)
    if violations:
        return convert.error_status(InvalidArgument(violations))
    return _metric(row, models) if signed else _denied()


def _denied() -> status_pb2.Status:
    denied = PermissionDenied(
        "assignment_token: does not match (task_id, attempt, worker_id)",
        reason="BAD_ASSIGNMENT_TOKEN",
        metadata={"field": "assignment_token"},
    )
    return convert.error_status(denied)


def _metric(row: tuple[Any, ...], models: dict[tuple[str, str], ModelRef]) -> Metric:
    """The same value as `convert.metric_from_proto` of a valid metric."""
    # Unpacked once into locals (the row layout above): cheaper than a subscript per field.
    (
        task_id, token, worker, device, category, tenant, model_name, model_version,
        attempt, precision, batch_size, outcome, has_exec, exec_s, exec_n, has_wait, wait_s, wait_n,
        items, gpu_util, cpu_util, memory, power, has_finished, finished_s, finished_n,
    ) = row  # fmt: skip
    model = models.get((model_name, model_version))
    if model is None:
        model = models[(model_name, model_version)] = ModelRef(name=model_name, version=model_version)
    # Metric's fields in declaration order.
    return Metric.from_fields(
        (
            task_id, attempt, token, worker, device, model, _PRECISION[precision], batch_size,
            category, tenant,
            (wait_s * _NANOS + wait_n) / 1e9 if has_wait else None,
            (exec_s * _NANOS + exec_n) / 1e9 if has_exec else None,
            items, gpu_util, cpu_util, memory, power, _OUTCOME[outcome],
            _EPOCH + timedelta(0, finished_s, finished_n // 1000) if has_finished else None,
        )
    )  # fmt: skip
