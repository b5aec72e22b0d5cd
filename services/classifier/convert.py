"""Protos ↔ domain types, in `x_to_proto` / `x_from_proto` pairs."""

from __future__ import annotations

from datetime import datetime

from common.auth import Principal
from common.timeutil import to_timestamp
from services.classifier.model import (
    Classification,
    Eligibility,
    Precision,
    SpecTraits,
    Tenant,
    TenantQuotas,
)
from services.classifier.tenant_watch import TenantChanges
from switchyard.v1 import classifier_pb2, types_pb2

_ELIGIBILITY_TO_PROTO = {
    Eligibility.CPU_ONLY: types_pb2.ELIGIBILITY_CPU_ONLY,
    Eligibility.GPU_ONLY: types_pb2.ELIGIBILITY_GPU_ONLY,
    Eligibility.CPU_OR_GPU: types_pb2.ELIGIBILITY_CPU_OR_GPU,
}
_ELIGIBILITY_FROM_PROTO = {v: k for k, v in _ELIGIBILITY_TO_PROTO.items()}


def eligibility_to_proto(value: Eligibility) -> types_pb2.Eligibility.ValueType:
    return _ELIGIBILITY_TO_PROTO[value]


def eligibility_from_proto(value: types_pb2.Eligibility.ValueType) -> Eligibility:
    try:
        return _ELIGIBILITY_FROM_PROTO[value]
    except KeyError:
        raise ValueError(f"eligibility {value} has no domain value") from None


def traits_from_proto(spec: types_pb2.TaskSpec) -> SpecTraits:
    """The parts of a (validated) spec that classification looks at."""
    return SpecTraits(
        category=spec.category,
        precision=Precision(spec.precision),
        gpu_count=spec.resources.gpu_count,
        gpu_memory_bytes=spec.resources.gpu_memory_bytes,
    )


def classification_to_proto(value: Classification) -> classifier_pb2.Classification:
    return classifier_pb2.Classification(
        category=value.category,
        eligibility=eligibility_to_proto(value.eligibility),
        priority_class=value.priority_class,
        rule=value.rule,
    )


def classification_from_proto(message: classifier_pb2.Classification) -> Classification:
    return Classification(
        category=message.category,
        eligibility=eligibility_from_proto(message.eligibility),
        priority_class=message.priority_class,
        rule=message.rule,
    )


def task_template(
    *,
    job_id: str,
    principal: Principal,
    classification: Classification,
    submitted_at: datetime,
) -> types_pb2.Task:
    """A classified task of a submit, ready for the scheduler's EnqueueTasks, but for its
    `id` and `spec` (the same for every task of the submit with this classification)."""
    return types_pb2.Task(
        job_id=job_id,
        tenant=principal.tenant,
        user=principal.user,
        category=classification.category,
        eligibility=eligibility_to_proto(classification.eligibility),
        priority_class=classification.priority_class,
        classification_rule=classification.rule,
        submitted_at=to_timestamp(submitted_at),
    )


def quotas_to_proto(value: TenantQuotas) -> types_pb2.TenantQuotas:
    return types_pb2.TenantQuotas(
        max_queued_tasks=value.max_queued_tasks,
        max_running_tasks=value.max_running_tasks,
        submit_rate_per_second=value.submit_rate_per_second,
        submit_burst=value.submit_burst,
    )


def quotas_from_proto(message: types_pb2.TenantQuotas) -> TenantQuotas:
    return TenantQuotas(
        max_queued_tasks=message.max_queued_tasks,
        max_running_tasks=message.max_running_tasks,
        submit_rate_per_second=message.submit_rate_per_second,
        submit_burst=message.submit_burst,
    )


def tenant_to_proto(value: Tenant) -> types_pb2.Tenant:
    return types_pb2.Tenant(name=value.name, share=value.share, quotas=quotas_to_proto(value.quotas))


def tenant_changes_to_proto(value: TenantChanges) -> classifier_pb2.WatchTenantsResponse:
    return classifier_pb2.WatchTenantsResponse(
        tenants=[tenant_to_proto(t) for t in value.tenants], snapshot=value.snapshot, removed=value.removed
    )
