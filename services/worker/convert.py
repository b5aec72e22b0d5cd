"""Proto ↔ domain conversions of the worker (protos never travel past this module)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from google.protobuf import duration_pb2, json_format, struct_pb2

from common.timeutil import from_timestamp, set_timestamp, to_timestamp
from services.worker.model import (
    Assignment,
    BlockRef,
    DeviceInfo,
    HandlerResult,
    Outcome,
    TaskInput,
    TaskReport,
    TelemetrySample,
    WorkerStatus,
)
from switchyard.v1 import scheduler_pb2, types_pb2

PRECISION_NAMES: dict[int, str] = {
    types_pb2.PRECISION_FP32: "fp32",
    types_pb2.PRECISION_BF16: "bf16",
    types_pb2.PRECISION_FP16: "fp16",
    types_pb2.PRECISION_INT8: "int8",
}
PRECISION_ENUMS: dict[str, types_pb2.Precision.ValueType] = {
    name: types_pb2.Precision.ValueType(value) for value, name in PRECISION_NAMES.items()
}
OUTCOMES = {
    Outcome.SUCCEEDED: types_pb2.OUTCOME_SUCCEEDED,
    Outcome.FAILED: types_pb2.OUTCOME_FAILED,
    Outcome.CANCELLED: types_pb2.OUTCOME_CANCELLED,
    Outcome.TIMED_OUT: types_pb2.OUTCOME_TIMED_OUT,
}
KINDS = {"cpu": types_pb2.WORKER_KIND_CPU, "gpu": types_pb2.WORKER_KIND_GPU}
ELIGIBILITY_NAMES: dict[int, str] = {
    types_pb2.ELIGIBILITY_CPU_ONLY: "cpu_only",
    types_pb2.ELIGIBILITY_GPU_ONLY: "gpu_only",
    types_pb2.ELIGIBILITY_CPU_OR_GPU: "cpu_or_gpu",
}


def precision_name(value: int) -> str:
    return PRECISION_NAMES.get(value, "")


def precision_enum(name: str) -> types_pb2.Precision.ValueType:
    return PRECISION_ENUMS.get(name or "fp32", types_pb2.PRECISION_UNSPECIFIED)


def task_input_from_proto(task: types_pb2.Task, *, device: str, artifact_dir: str) -> TaskInput:
    # Runs for every assignment: empty repeated and map fields are not iterated, and the
    # optional parameters are converted only when present.
    spec = task.spec
    model = spec.model
    refs = spec.inputs
    outputs = spec.outputs
    labels = spec.labels
    return TaskInput(
        task_id=task.id,
        attempt=task.attempt,
        tenant=task.tenant,
        category=task.category or spec.category,
        model_name=model.name,
        model_version=model.version,
        precision=PRECISION_NAMES.get(spec.precision, ""),
        batch_size=spec.batch_size,
        item_count=spec.item_count,
        parameters=json_format.MessageToDict(spec.parameters) if spec.HasField("parameters") else {},
        data=spec.data,
        inputs=tuple([ref.uri or ref.id for ref in refs]) if refs else (),
        outputs=tuple([ref.id for ref in outputs if ref.id]) if outputs else (),
        input_blocks=_blocks(refs) if refs else (),
        labels=dict(labels) if labels else {},
        eligibility=ELIGIBILITY_NAMES.get(task.eligibility, ""),
        device=device,
        artifact_dir=artifact_dir,
    )


def _blocks(refs: Iterable[types_pb2.DatablockRef]) -> tuple[BlockRef, ...]:
    return tuple([BlockRef(id=ref.id, uri=ref.uri, size_bytes=ref.size_bytes) for ref in refs])


def assignment_from_proto(
    message: scheduler_pb2.Assignment,
    *,
    device: str,
    artifact_dir: str,
    default_timeout_s: float,
    session: int,
) -> Assignment:
    task = message.task
    spec = task.spec
    timeout = 0.0
    if spec.HasField("timeout"):
        limit = spec.timeout
        timeout = limit.seconds + limit.nanos / 1e9
    return Assignment(
        input=task_input_from_proto(task, device=device, artifact_dir=artifact_dir),
        token=message.assignment_token,
        timeout_s=timeout if timeout > 0 else default_timeout_s,
        queued_at=from_timestamp(task.queued_at) if task.HasField("queued_at") else None,
        session=session,
    )


def _set_value(out: struct_pb2.Value, value: Any) -> None:
    """A handler's summary value as a protobuf Value: what JSON holds, finite numbers
    (others become null), str keys; anything else as a number if it is one, else its str."""
    if value is None:
        out.null_value = struct_pb2.NULL_VALUE
    elif value is True or value is False:
        out.bool_value = value
    elif isinstance(value, str):
        out.string_value = value
    elif isinstance(value, int | float):
        try:
            _set_number(out, float(value))
        except OverflowError:  # an int beyond a double
            out.null_value = struct_pb2.NULL_VALUE
    elif isinstance(value, dict):
        _fill_struct(out.struct_value, value)
    elif isinstance(value, list | tuple):
        items = out.list_value
        items.SetInParent()
        for item in value:
            _set_value(items.values.add(), item)
    else:
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            out.string_value = str(value)
        else:
            _set_number(out, number)


def _set_number(out: struct_pb2.Value, number: float) -> None:
    if math.isfinite(number):
        out.number_value = number
    else:
        out.null_value = struct_pb2.NULL_VALUE


def _fill_struct(out: struct_pb2.Struct, values: dict[Any, Any]) -> None:
    # One pass, in place: several times cheaper than copying the values and Struct.update.
    out.SetInParent()
    fields = out.fields
    for key, value in values.items():
        _set_value(fields[str(key)], value)


def struct_from_dict(values: dict[str, Any]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    _fill_struct(out, values)
    return out


def _fill_result(out: types_pb2.TaskResult, result: HandlerResult) -> None:
    uri = result.artifact_uri
    if not uri and result.artifact_path:
        uri = Path(result.artifact_path).resolve().as_uri()
    out.SetInParent()
    if result.inline:
        out.inline = result.inline
    if uri:
        out.artifact_uri = uri
    _fill_struct(out.summary, result.summary)


def result_to_proto(result: HandlerResult) -> types_pb2.TaskResult:
    out = types_pb2.TaskResult()
    _fill_result(out, result)
    return out


def started_to_proto(assignment: Assignment, started_at: datetime) -> scheduler_pb2.TaskStarted:
    out = scheduler_pb2.TaskStarted()
    started_into(out, assignment, started_at)
    return out


def started_into(out: scheduler_pb2.TaskStarted, assignment: Assignment, started_at: datetime) -> None:
    out.task_id, out.attempt, out.assignment_token = assignment.task_id, assignment.attempt, assignment.token
    set_timestamp(out.started_at, started_at)


def outcome_to_proto(report: TaskReport) -> scheduler_pb2.TaskOutcome:
    out = scheduler_pb2.TaskOutcome()
    outcome_into(out, report)
    return out


def outcome_into(out: scheduler_pb2.TaskOutcome, report: TaskReport) -> None:
    """Fill `out` in place (an element added to the message that carries it: no copy)."""
    a = report.assignment
    out.task_id, out.attempt, out.assignment_token = a.task_id, a.attempt, a.token
    out.outcome = OUTCOMES[report.outcome]
    if report.started_at is not None:
        set_timestamp(out.started_at, report.started_at)
    set_timestamp(out.finished_at, report.finished_at)
    if report.result is not None:
        _fill_result(out.result, report.result)
    if report.failure is not None:
        error = out.error
        error.reason, error.message = report.failure.reason, report.failure.message


def telemetry_to_proto(sample: TelemetrySample) -> types_pb2.Telemetry:
    return types_pb2.Telemetry(
        cpu_utilization=sample.cpu_utilization,
        memory_used_bytes=sample.memory_used_bytes,
        memory_total_bytes=sample.memory_total_bytes,
        gpu_utilization=sample.gpu_utilization,
        gpu_memory_used_bytes=sample.gpu_memory_used_bytes,
        gpu_memory_total_bytes=sample.gpu_memory_total_bytes,
        gpu_power_watts=sample.gpu_power_watts,
        observed_at=to_timestamp(sample.observed_at),
    )


def worker_info_to_proto(status: WorkerStatus) -> types_pb2.WorkerInfo:
    device: DeviceInfo = status.device
    return types_pb2.WorkerInfo(
        id=status.worker_id,
        kind=KINDS[device.kind],
        device_model=device.device_model,
        slots=status.slots,
        free_slots=status.free_slots,
        memory_bytes=device.memory_bytes,
        gpu_memory_bytes=device.gpu_memory_bytes,
        precisions=[precision_enum(p) for p in device.precisions],
        categories=list(status.categories),
        cached_datablocks=list(status.cached_datablocks),
        telemetry=telemetry_to_proto(status.telemetry),
        address=status.address,
        draining=status.draining,
    )


def heartbeat_to_proto(status: WorkerStatus) -> scheduler_pb2.Heartbeat:
    return scheduler_pb2.Heartbeat(
        telemetry=telemetry_to_proto(status.telemetry),
        free_slots=status.free_slots,
        running_task_ids=list(status.running_task_ids),
        cached_datablocks=list(status.cached_datablocks),
    )


def metrics_to_proto(
    report: TaskReport, *, worker_id: str, device_model: str, telemetry: TelemetrySample
) -> types_pb2.ResultMetrics:
    # Runs for every finished task: fields that would hold their default are left unset
    # (the same message on the wire), each set field costs a conversion.
    task = report.assignment.input
    execution_s = report.execution_s
    out = types_pb2.ResultMetrics(
        task_id=task.task_id,
        attempt=task.attempt,
        assignment_token=report.assignment.token,
        worker_id=worker_id,
        device_model=device_model,
        precision=PRECISION_ENUMS.get(task.precision or "fp32", types_pb2.PRECISION_UNSPECIFIED),
        category=task.category,
        tenant=task.tenant,
        outcome=OUTCOMES[report.outcome],
    )
    set_timestamp(out.finished_at, report.finished_at)
    _set_duration(out.execution_time, execution_s)
    if task.model_name or task.model_version:
        out.model.name, out.model.version = task.model_name, task.model_version
    if task.batch_size:
        out.batch_size = task.batch_size
    items = report.result.items if report.result else 0
    if items and execution_s > 0:
        out.items_per_second = items / execution_s
    if report.peak_memory_bytes:
        out.memory_bytes = report.peak_memory_bytes
    if telemetry.cpu_utilization:
        out.cpu_utilization = telemetry.cpu_utilization
    if telemetry.gpu_utilization or telemetry.gpu_power_watts:
        out.gpu_utilization, out.gpu_power_watts = telemetry.gpu_utilization, telemetry.gpu_power_watts
    queued_at = report.assignment.queued_at
    if queued_at is not None and report.started_at is not None:
        _set_duration(out.queue_wait, (report.started_at - queued_at).total_seconds())
    return out


def _set_duration(out: duration_pb2.Duration, seconds: float) -> None:
    """A non-negative duration (a negative one reads as 0), set in place: several times
    cheaper than `Duration.FromNanoseconds`, and this runs for every finished task."""
    nanos = max(int(seconds * 1e9), 0)
    out.SetInParent()
    out.seconds, out.nanos = divmod(nanos, 1_000_000_000)
