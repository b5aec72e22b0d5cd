"""Proto ↔ scheduler domain conversions (the only place that knows both)."""

from __future__ import annotations

from typing import Any

from google.protobuf import struct_pb2

from common.timeutil import seconds_to_duration
from services.scheduler.core.model import Group, Kind, QosClass, TaskDemand, WorkerSlots
from services.scheduler.core.priority import Factor
from services.scheduler.model import JobRecord, TaskRecord, TaskState
from switchyard.v1 import types_pb2

TERMINAL_JOB_FAILED = (TaskState.FAILED, TaskState.EXPIRED)


def _ts(value: float | None, target: Any) -> None:
    """Set a Timestamp field from epoch seconds (two plain assignments: FromNanoseconds'
    checks cost several times more, and this runs for every field of every task shown)."""
    if value is not None:
        ns = int(value * 1e9)
        target.seconds = ns // 1_000_000_000
        target.nanos = ns % 1_000_000_000


def nanoseconds(stamp: Any) -> int:
    """A Timestamp's ToNanoseconds(), without its checks."""
    return int(stamp.seconds * 1_000_000_000 + stamp.nanos)


def seconds(stamp: Any) -> float:
    """Epoch seconds of a Timestamp (ToNanoseconds() / 1e9 exactly)."""
    return nanoseconds(stamp) / 1e9


def demand_from_spec(
    task_id: str,
    tenant: str,
    category: str,
    group: int,
    priority_class: int,
    spec: types_pb2.TaskSpec,
    now: float,
) -> TaskDemand:
    deadline = seconds(spec.qos.deadline) if spec.qos.HasField("deadline") else None
    return TaskDemand(
        task_id=task_id,
        tenant=tenant,
        category=category,
        group=Group(group),
        priority_class=priority_class,
        qos_class=QosClass(spec.qos.qos_class),
        model=spec.model.name,
        precision=int(spec.precision),
        batch_size=spec.batch_size,
        enqueued_at=now,
        deadline=deadline,
        memory_bytes=spec.resources.memory_bytes,
        gpu_memory_bytes=spec.resources.gpu_memory_bytes,
        expire_on_miss=spec.qos.on_deadline_miss == types_pb2.DEADLINE_MISS_POLICY_EXPIRE,
        inputs=tuple((block.id or block.uri, max(block.size_bytes, 0)) for block in spec.inputs),
    )


def record_from_proto(task: types_pb2.Task, now: float) -> TaskRecord:
    """A classified task arriving from the classifier."""
    submitted = seconds(task.submitted_at) if task.HasField("submitted_at") else now
    demand = demand_from_spec(
        task.id, task.tenant, task.category, task.eligibility, task.priority_class, task.spec, now
    )
    return TaskRecord(
        id=task.id,
        job_id=task.job_id,
        tenant=task.tenant,
        user=task.user,
        category=task.category,
        eligibility=int(task.eligibility),
        priority_class=task.priority_class,
        rule=task.classification_rule,
        state=TaskState.QUEUED,
        spec=task.spec.SerializeToString(deterministic=True),
        demand=demand,
        submitted_at=submitted,
        depends_on=tuple(task.spec.depends_on),
        idempotency_key=task.spec.idempotency_key or None,
    )


def record_from_row(row: Any) -> TaskRecord:
    spec = types_pb2.TaskSpec.FromString(row.spec)
    enqueued = row.queued_at if row.queued_at is not None else row.submitted_at
    demand = demand_from_spec(
        row.id, row.tenant, row.category, row.eligibility, row.priority_class, spec, enqueued
    )
    return TaskRecord(
        id=row.id,
        job_id=row.job_id,
        tenant=row.tenant,
        user=row.user_name,
        category=row.category,
        eligibility=row.eligibility,
        priority_class=row.priority_class,
        rule=row.classification_rule,
        state=TaskState(row.state),
        spec=row.spec,
        demand=demand,
        submitted_at=row.submitted_at,
        depends_on=tuple(spec.depends_on),
        idempotency_key=row.idempotency_key,
        attempt=row.attempt,
        worker_id=row.worker_id,
        queued_at=row.queued_at,
        assigned_at=row.assigned_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        result=row.result,
        error_reason=row.error_reason,
        error_message=row.error_message,
    )


def task_to_proto(record: TaskRecord, *, with_spec: bool = True) -> types_pb2.Task:
    task = types_pb2.Task(
        id=record.id,
        job_id=record.job_id,
        tenant=record.tenant,
        user=record.user,
        category=record.category,
        eligibility=record.eligibility,  # type: ignore[arg-type]
        priority_class=record.priority_class,
        state=int(record.state),  # type: ignore[arg-type]
        attempt=record.attempt,
        worker_id=record.worker_id or "",
        classification_rule=record.rule,
    )
    if with_spec:
        task.spec.ParseFromString(record.spec)
    _outcome(task, record)
    return task


def refresh_proto(task: types_pb2.Task, record: TaskRecord) -> types_pb2.Task:
    """`task`, the classified proto that `record` was made from, brought up to the record:
    what `task_to_proto` would build, without building the immutable part again."""
    task.state = int(record.state)  # type: ignore[assignment]
    task.attempt = record.attempt
    task.worker_id = record.worker_id or ""
    _outcome(task, record)
    return task


def _outcome(task: types_pb2.Task, record: TaskRecord) -> None:
    # Field by field rather than a loop with getattr: this runs for every task shown,
    # assigned or answered.
    if record.submitted_at is not None:
        _ts(record.submitted_at, task.submitted_at)
    if record.queued_at is not None:
        _ts(record.queued_at, task.queued_at)
    if record.assigned_at is not None:
        _ts(record.assigned_at, task.assigned_at)
    if record.started_at is not None:
        _ts(record.started_at, task.started_at)
    if record.finished_at is not None:
        _ts(record.finished_at, task.finished_at)
    if record.result:
        task.result.ParseFromString(record.result)
    if record.error_reason:
        task.error.reason = record.error_reason
        task.error.message = record.error_message or ""


def job_state(counts: dict[TaskState, int]) -> int:
    total = sum(counts.values())
    done = sum(n for s, n in counts.items() if s.terminal)
    if done < total:
        return types_pb2.JOB_STATE_ACTIVE
    if any(counts.get(s) for s in TERMINAL_JOB_FAILED):
        return types_pb2.JOB_STATE_FAILED
    if counts.get(TaskState.CANCELLED):
        return types_pb2.JOB_STATE_CANCELLED
    return types_pb2.JOB_STATE_SUCCEEDED


def job_to_proto(job: JobRecord, counts: dict[TaskState, int], task_ids: list[str]) -> types_pb2.Job:
    out = types_pb2.Job(id=job.id, tenant=job.tenant, task_ids=task_ids, state=job_state(counts))  # type: ignore[arg-type]
    out.progress.total = sum(counts.values())
    out.progress.done = sum(n for s, n in counts.items() if s.terminal)
    for state, n in counts.items():
        out.progress.by_state[types_pb2.TaskState.Name(int(state))] = n  # type: ignore[arg-type]
    _ts(job.created_at, out.created_at)
    return out


def worker_from_proto(
    info: types_pb2.WorkerInfo, worker_id: str, now: float, prefetch_per_slot: int = 0
) -> WorkerSlots:
    """The worker's assignment room is its slots plus a small prefetch per slot, so a slot
    that finishes finds its next task already on the worker instead of a round trip away."""
    slots = max(info.slots, 1)
    return WorkerSlots(
        worker_id=worker_id,
        kind=Kind(info.kind) if info.kind else Kind.CPU,
        device_model=info.device_model or "unknown",
        slots=slots,
        free_slots=slots * (1 + prefetch_per_slot),
        memory_bytes=info.memory_bytes,
        gpu_memory_bytes=info.gpu_memory_bytes,
        precisions=frozenset(int(p) for p in info.precisions),
        categories=frozenset(info.categories),
        draining=info.draining,
        last_heartbeat=now,
        cached=frozenset(info.cached_datablocks),
    )


def worker_to_proto(worker: WorkerSlots, info: types_pb2.WorkerInfo | None) -> types_pb2.WorkerInfo:
    out = types_pb2.WorkerInfo()
    if info is not None:
        out.CopyFrom(info)
    out.id = worker.worker_id
    out.free_slots = worker.free_slots
    out.draining = worker.draining
    return out


def explanation_to_proto(
    record: TaskRecord, factors: list[Factor], reasons: list[str], position: int | None
) -> types_pb2.Explanation:
    return types_pb2.Explanation(
        task_id=record.id,
        state=int(record.state),  # type: ignore[arg-type]
        priority=sum(f.contribution for f in factors),
        factors=[types_pb2.PriorityFactor(name=f.name, value=f.value, weight=f.weight) for f in factors],
        wait_reasons=reasons,
        queue_position=position or 0,
    )


def summary_struct(values: dict[str, Any]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(values)
    return out


__all__ = ["seconds_to_duration"]
