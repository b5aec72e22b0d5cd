"""The scheduler's proto conversions: the cheap paths give what the full ones give."""

from __future__ import annotations

from google.protobuf import timestamp_pb2

from services.scheduler.convert import nanoseconds, record_from_proto, refresh_proto, seconds, task_to_proto
from services.scheduler.model import TaskState
from switchyard.v1 import types_pb2


def classified() -> types_pb2.Task:
    spec = types_pb2.TaskSpec(category="inference", batch_size=8)
    spec.model.name = "mlp"
    task = types_pb2.Task(id="task_1", job_id="job_1", tenant="acme", user="ann", category="inference")
    task.eligibility = types_pb2.ELIGIBILITY_CPU_OR_GPU
    task.priority_class = 3
    task.classification_rule = "inference-any"
    task.spec.CopyFrom(spec)
    task.submitted_at.FromNanoseconds(1_700_000_000_123_456_789)
    return task


def test_refresh_proto_equals_a_proto_built_from_the_record_in_every_state() -> None:
    incoming = classified()
    record = record_from_proto(incoming, 1_700_000_001.0)
    record.queued_at = 1_700_000_001.25
    assert refresh_proto(types_pb2.Task.FromString(incoming.SerializeToString()), record) == task_to_proto(
        record
    )
    record.state, record.attempt, record.worker_id = TaskState.ASSIGNED, 1, "cpu-1"
    record.assigned_at, record.started_at = 1_700_000_001.5, 1_700_000_001.75
    assert refresh_proto(types_pb2.Task.FromString(incoming.SerializeToString()), record) == task_to_proto(
        record
    )
    record.state, record.finished_at = TaskState.FAILED, 1_700_000_002.0
    record.error_reason, record.error_message = "BOOM", "it broke"
    record.result = types_pb2.TaskResult(inline=b"partial").SerializeToString()
    got = refresh_proto(types_pb2.Task.FromString(incoming.SerializeToString()), record)
    assert got == task_to_proto(record)
    assert got.error.reason == "BOOM" and got.result.inline == b"partial" and got.worker_id == "cpu-1"


def test_timestamps_convert_as_the_protobuf_helpers_do() -> None:
    for ns in (0, 1, 999_999_999, 1_700_000_000_123_456_789, -1_500_000_000):
        stamp = timestamp_pb2.Timestamp()
        stamp.FromNanoseconds(ns)
        assert nanoseconds(stamp) == stamp.ToNanoseconds() == ns
        assert seconds(stamp) == stamp.ToNanoseconds() / 1e9
    record = record_from_proto(classified(), 0.0)
    record.queued_at = 1_700_000_001.123456
    built = task_to_proto(record)
    expected = timestamp_pb2.Timestamp()
    expected.FromNanoseconds(int(1_700_000_001.123456 * 1e9))
    assert built.queued_at == expected
