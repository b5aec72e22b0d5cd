"""Protobuf ↔ domain conversions (`x_to_proto` / `x_from_proto` pairs) and ack statuses."""

from __future__ import annotations

from collections.abc import Sequence

from google.rpc import status_pb2

from common.errors import SwitchyardError
from common.interceptor import status_for
from common.logs import request_id_var
from common.timeutil import from_timestamp, seconds_to_duration, to_timestamp
from services.profile_store.model import (
    Metric,
    ModelRef,
    Outcome,
    Precision,
    Profile,
    ProfileFilter,
    ProfileKey,
    TenantScore,
)
from switchyard.v1 import profile_store_pb2, types_pb2

_PRECISION_TO_PROTO = {
    Precision.UNSPECIFIED: types_pb2.PRECISION_UNSPECIFIED,
    Precision.FP32: types_pb2.PRECISION_FP32,
    Precision.BF16: types_pb2.PRECISION_BF16,
    Precision.FP16: types_pb2.PRECISION_FP16,
    Precision.INT8: types_pb2.PRECISION_INT8,
}
_PRECISION_FROM_PROTO = {v: k for k, v in _PRECISION_TO_PROTO.items()}
_OUTCOME_TO_PROTO = {
    Outcome.SUCCEEDED: types_pb2.OUTCOME_SUCCEEDED,
    Outcome.FAILED: types_pb2.OUTCOME_FAILED,
    Outcome.CANCELLED: types_pb2.OUTCOME_CANCELLED,
    Outcome.TIMED_OUT: types_pb2.OUTCOME_TIMED_OUT,
}
_OUTCOME_FROM_PROTO = {v: k for k, v in _OUTCOME_TO_PROTO.items()}
OK = status_pb2.Status(code=0)


def precision_to_proto(value: Precision) -> types_pb2.Precision.ValueType:
    return _PRECISION_TO_PROTO[value]


def precision_from_proto(value: int) -> Precision:
    return _PRECISION_FROM_PROTO[types_pb2.Precision.ValueType(value)]


def model_ref_to_proto(ref: ModelRef) -> types_pb2.ModelRef:
    return types_pb2.ModelRef(name=ref.name, version=ref.version)


def model_ref_from_proto(ref: types_pb2.ModelRef) -> ModelRef:
    return ModelRef(name=ref.name, version=ref.version)


def metric_from_proto(m: types_pb2.ResultMetrics) -> Metric:
    """A validated metric (see validate.metric_violations) as a domain value."""
    return Metric(
        task_id=m.task_id,
        attempt=m.attempt,
        assignment_token=m.assignment_token,
        worker_id=m.worker_id,
        device_model=m.device_model,
        model=model_ref_from_proto(m.model),
        precision=precision_from_proto(m.precision),
        batch_size=m.batch_size,
        category=m.category,
        tenant=m.tenant,
        queue_wait_s=m.queue_wait.ToNanoseconds() / 1e9 if m.HasField("queue_wait") else None,
        execution_time_s=m.execution_time.ToNanoseconds() / 1e9 if m.HasField("execution_time") else None,
        items_per_second=m.items_per_second,
        gpu_utilization=m.gpu_utilization,
        cpu_utilization=m.cpu_utilization,
        memory_bytes=m.memory_bytes,
        gpu_power_watts=m.gpu_power_watts,
        outcome=_OUTCOME_FROM_PROTO[m.outcome],
        finished_at=from_timestamp(m.finished_at) if m.HasField("finished_at") else None,
    )


def metric_to_proto(m: Metric) -> types_pb2.ResultMetrics:
    return types_pb2.ResultMetrics(
        task_id=m.task_id,
        attempt=m.attempt,
        assignment_token=m.assignment_token,
        worker_id=m.worker_id,
        device_model=m.device_model,
        model=model_ref_to_proto(m.model),
        precision=precision_to_proto(m.precision),
        batch_size=m.batch_size,
        category=m.category,
        tenant=m.tenant,
        queue_wait=seconds_to_duration(m.queue_wait_s) if m.queue_wait_s is not None else None,
        execution_time=seconds_to_duration(m.execution_time_s) if m.execution_time_s is not None else None,
        items_per_second=m.items_per_second,
        gpu_utilization=m.gpu_utilization,
        cpu_utilization=m.cpu_utilization,
        memory_bytes=m.memory_bytes,
        gpu_power_watts=m.gpu_power_watts,
        outcome=_OUTCOME_TO_PROTO[m.outcome],
        finished_at=to_timestamp(m.finished_at),
    )


def profile_key_to_proto(key: ProfileKey) -> types_pb2.ProfileKey:
    return types_pb2.ProfileKey(
        device_model=key.device_model,
        model=model_ref_to_proto(key.model),
        precision=precision_to_proto(key.precision),
        batch_bucket=key.batch_bucket,
        category=key.category,
    )


def profile_key_from_proto(key: types_pb2.ProfileKey) -> ProfileKey:
    return ProfileKey(
        device_model=key.device_model,
        model=model_ref_from_proto(key.model),
        precision=precision_from_proto(key.precision),
        batch_bucket=key.batch_bucket,
        category=key.category,
    )


def profile_to_proto(p: Profile) -> types_pb2.Profile:
    return types_pb2.Profile(
        key=profile_key_to_proto(p.key),
        count=p.count,
        mean_seconds=p.mean_seconds,
        ewma_seconds=p.ewma_seconds,
        variance=p.variance,
        p50_seconds=p.p50_seconds,
        p95_seconds=p.p95_seconds,
        p99_seconds=p.p99_seconds,
        items_per_second=p.items_per_second,
        updated_at=to_timestamp(p.updated_at),
    )


def profile_from_proto(p: types_pb2.Profile) -> Profile:
    return Profile(
        key=profile_key_from_proto(p.key),
        count=p.count,
        mean_seconds=p.mean_seconds,
        ewma_seconds=p.ewma_seconds,
        variance=p.variance,
        p50_seconds=p.p50_seconds,
        p95_seconds=p.p95_seconds,
        p99_seconds=p.p99_seconds,
        items_per_second=p.items_per_second,
        updated_at=from_timestamp(p.updated_at),
    )


def tenant_score_to_proto(s: TenantScore) -> types_pb2.TenantScore:
    return types_pb2.TenantScore(
        tenant=s.tenant,
        share=s.share,
        decayed_usage=s.decayed_usage,
        usage_score=s.usage_score,
        fair_share_factor=s.fair_share_factor,
    )


def tenant_score_from_proto(s: types_pb2.TenantScore) -> TenantScore:
    return TenantScore(
        tenant=s.tenant,
        share=s.share,
        decayed_usage=s.decayed_usage,
        usage_score=s.usage_score,
        fair_share_factor=s.fair_share_factor,
    )


def profile_filter_from_proto(request: profile_store_pb2.ListProfilesRequest) -> ProfileFilter:
    return ProfileFilter(
        model_name=request.model_name,
        device_model=request.device_model,
        precision=precision_from_proto(request.precision),
    )


def error_status(exc: SwitchyardError) -> status_pb2.Status:
    """A per-item rejection, with the same details the interceptor gives a failed call."""
    return status_for(exc, request_id_var.get())


def ack(
    m: types_pb2.ResultMetrics, status: status_pb2.Status = OK, *, duplicate: bool = False
) -> profile_store_pb2.MetricAck:
    return profile_store_pb2.MetricAck(
        task_id=m.task_id, attempt=m.attempt, status=status, duplicate=duplicate
    )


def ingest_response(
    metrics: Sequence[types_pb2.ResultMetrics],
    checked: Sequence[Metric | status_pb2.Status],
    duplicates: Sequence[bool],
) -> profile_store_pb2.IngestMetricsResponse:
    """One ack per metric of a request, in order: the rejection's status, or for a stored
    metric (`duplicates` holds one flag per stored metric, in order) no status at all, which
    reads as code 0 (OK) and costs nothing to build, send or parse."""
    response = profile_store_pb2.IngestMetricsResponse()
    acks = response.acks
    add, stored = acks.add, iter(duplicates)
    for m, c in zip(metrics, checked, strict=True):
        if isinstance(c, Metric):
            if next(stored):
                add(task_id=c.task_id, attempt=c.attempt, duplicate=True)
            else:  # False is the default: not setting it is the same ack, built faster
                add(task_id=c.task_id, attempt=c.attempt)
        else:
            acks.append(ack(m, c))
    return response
