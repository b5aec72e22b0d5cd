"""The request-wide metric check (intake.py) against the one-metric-at-a-time reference:
validate.metric_violations, the assignment token, convert.metric_from_proto."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import FrozenInstanceError
from typing import Any

import pytest
from google.rpc import error_details_pb2, status_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from common.errors import InvalidArgument
from common.tokens import sign_assignment, verify_assignment
from services.profile_store import convert, intake, validate
from services.profile_store.model import Metric
from switchyard.v1 import types_pb2

SECRET = "intake-test-secret"


def good(i: int = 0, **fields: Any) -> types_pb2.ResultMetrics:
    m = types_pb2.ResultMetrics(
        task_id=f"task-{i}", attempt=1 + i % 3, worker_id=f"w{i % 4}", device_model="h100",
        model=types_pb2.ModelRef(name=f"m{i % 2}", version="1"), precision=types_pb2.PRECISION_BF16,
        batch_size=i % 70, category="inference", tenant=f"t{i % 5}", outcome=types_pb2.OUTCOME_SUCCEEDED,
        items_per_second=float(i), gpu_utilization=0.5, cpu_utilization=1.0, memory_bytes=i << 20,
        gpu_power_watts=250.5,
    )  # fmt: skip
    m.execution_time.FromNanoseconds(1_000_000 * (i + 1) + 7)
    if i % 2:
        m.queue_wait.FromNanoseconds(123_456_789 * i)
    if i % 3:
        m.finished_at.FromNanoseconds(1_900_000_000_123_456_789 + i)
    for name, value in fields.items():
        setattr(m, name, value)
    m.assignment_token = sign_assignment(SECRET, m.task_id, m.attempt, m.worker_id)
    return m


def reference(m: types_pb2.ResultMetrics) -> Metric | status_pb2.Status:
    """What the servicer did one metric at a time before the request-wide check."""
    violations = validate.metric_violations(m)
    if violations:
        return convert.error_status(InvalidArgument(violations))
    if not verify_assignment(SECRET, m.assignment_token, m.task_id, m.attempt, m.worker_id):
        return status_pb2.Status(code=7)
    return convert.metric_from_proto(m)


def same(got: intake.Checked, want: Metric | status_pb2.Status) -> None:
    if isinstance(want, Metric):
        assert got == want
        return
    assert isinstance(got, status_pb2.Status)
    assert got.code == want.code
    if want.code == 3:  # the same violations, in the same words
        assert _violations(got) == _violations(want)


def _violations(status: status_pb2.Status) -> list[tuple[str, str]]:
    bad = error_details_pb2.BadRequest()
    assert any(d.Unpack(bad) for d in status.details)
    return [(v.field, v.description) for v in bad.field_violations]


def test_a_clean_request_gives_the_reference_metrics() -> None:
    metrics = [good(i) for i in range(60)]
    checked = intake.check_metrics(metrics, SECRET)
    assert len(checked) == 60
    for got, m in zip(checked, metrics, strict=True):
        same(got, reference(m))
    assert intake.check_metrics([], SECRET) == []
    first = checked[0]
    assert isinstance(first, Metric)
    with pytest.raises(FrozenInstanceError):
        first.task_id = "changed"  # type: ignore[misc]


def _negative(field: str) -> Callable[[types_pb2.ResultMetrics], None]:
    def spoil(m: types_pb2.ResultMetrics) -> None:
        getattr(m, field).seconds = -1

    return spoil


def _set(field: str, value: Any) -> Callable[[types_pb2.ResultMetrics], None]:
    return lambda m: setattr(m, field, value)


def _no_execution_time(m: types_pb2.ResultMetrics) -> None:
    m.ClearField("execution_time")


SPOILERS = {
    "empty task id": _set("task_id", ""),
    "long tenant": _set("tenant", "x" * 257),
    "control character": _set("category", "in\tference"),
    "control in model": lambda m: setattr(m.model, "version", "1\n"),
    "attempt 0": _set("attempt", 0),
    "unknown precision": _set("precision", 42),
    "no outcome": _set("outcome", types_pb2.OUTCOME_UNSPECIFIED),
    "batch size": _set("batch_size", -1),
    "no execution time": _no_execution_time,
    "negative execution": _negative("execution_time"),
    "negative wait": _negative("queue_wait"),
    "long execution": lambda m: setattr(m.execution_time, "seconds", validate.MAX_DURATION_S + 1),
    "NaN items": _set("items_per_second", math.nan),
    "inf power": _set("gpu_power_watts", math.inf),
    "utilisation": _set("gpu_utilization", 1.01),
    "negative cpu": _set("cpu_utilization", -0.0001),
    "negative memory": _set("memory_bytes", -5),
    "bad timestamp": lambda m: setattr(m.finished_at, "seconds", validate.MAX_TIMESTAMP_S + 1),
    "forged token": _set("assignment_token", "forged"),
}


@pytest.mark.parametrize("case", SPOILERS)
def test_one_bad_metric_is_rejected_and_the_others_still_pass(case: str) -> None:
    metrics = [good(i) for i in range(8)]
    SPOILERS[case](metrics[3])
    checked = intake.check_metrics(metrics, SECRET)
    assert isinstance(checked[3], status_pb2.Status) and checked[3].code in (3, 7), case
    for got, m in zip(checked, metrics, strict=True):
        same(got, reference(m))


def test_a_failed_metric_needs_no_execution_time_and_large_sums_are_fine() -> None:
    failed = good(1, outcome=types_pb2.OUTCOME_FAILED)
    failed.ClearField("execution_time")
    huge = [good(i, items_per_second=1e308, gpu_power_watts=1.7e308) for i in range(3)]  # sums overflow
    metrics = [failed, *huge]
    checked = intake.check_metrics(metrics, SECRET)
    assert all(isinstance(c, Metric) for c in checked)
    for got, m in zip(checked, metrics, strict=True):
        same(got, reference(m))


FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, 0.5, 1.0, -0.0, 1.5, 1e-300])
NAMES = st.text(max_size=6) | st.sampled_from(["h100", "", "x" * 300, "a\\b"])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "task_id": NAMES,
                "attempt": st.integers(-2, 3),
                "tenant": NAMES,
                "precision": st.integers(-1, 6),
                "outcome": st.integers(0, 5),
                "batch_size": st.integers(-2, validate.MAX_BATCH_SIZE + 1),
                "items_per_second": FLOATS,
                "gpu_utilization": FLOATS,
                "memory_bytes": st.integers(-1, 1 << 40),
                "execution": st.none() | st.tuples(st.integers(-2, 10**7), st.integers(-2, 10**9 + 1)),
            }
        ),
        min_size=1,
        max_size=6,
    )
)
def test_any_request_gets_the_verdicts_of_the_reference(fields: list[dict[str, Any]]) -> None:
    metrics = []
    for i, f in enumerate(fields):
        execution = f.pop("execution")
        m = good(i)
        for name, value in f.items():
            setattr(m, name, value)
        if execution is None:
            m.ClearField("execution_time")
        else:
            m.execution_time.seconds, m.execution_time.nanos = execution
        m.assignment_token = sign_assignment(SECRET, m.task_id, m.attempt, m.worker_id)
        metrics.append(m)
    for got, m in zip(intake.check_metrics(metrics, SECRET), metrics, strict=True):
        same(got, reference(m))


def test_forged_replayed_and_wrong_worker_tokens_are_denied_one_by_one_naming_the_field() -> None:
    metrics = [good(i) for i in range(8)]
    metrics[1].assignment_token = sign_assignment("another-secret", "task-1", 2, "w1")  # forged
    metrics[3].assignment_token = sign_assignment(SECRET, "task-3", 2, "w3")  # replayed: attempt 2's
    metrics[3].attempt = 3
    metrics[5].assignment_token = sign_assignment(SECRET, "task-5", 3, "w0")  # another worker's
    checked = intake.check_metrics(metrics, SECRET)
    for i, (got, m) in enumerate(zip(checked, metrics, strict=True)):
        same(got, reference(m))
        if i not in (1, 3, 5):
            assert isinstance(got, Metric)
            continue
        assert isinstance(got, status_pb2.Status) and got.code == 7
        assert got.message.startswith("assignment_token:")
        info = error_details_pb2.ErrorInfo()
        assert any(d.Unpack(info) for d in got.details)
        assert info.reason == "BAD_ASSIGNMENT_TOKEN" and info.metadata["field"] == "assignment_token"
