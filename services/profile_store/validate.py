"""Request validators: each collects every problem as a field violation (STYLE 8)."""

from __future__ import annotations

import base64
import binascii
import math
import re

from google.protobuf import duration_pb2, timestamp_pb2

from common.errors import FieldViolation, Violations
from switchyard.v1 import profile_store_pb2, types_pb2

MAX_NAME = 256
MAX_PAGE_SIZE = 1000
MAX_BATCH_SIZE = 1 << 30
# Longest execution or queue wait we believe: 30 days.
MAX_DURATION_S = 30 * 24 * 3600
PRECISIONS = frozenset(types_pb2.Precision.values())
OUTCOMES = frozenset(types_pb2.Outcome.values()) - {types_pb2.OUTCOME_UNSPECIFIED}
CONTROL = re.compile("[\x00-\x1f]")
MIN_TIMESTAMP_S, MAX_TIMESTAMP_S = -62135596800, 253402300799  # 0001-01-01 .. 9999-12-31


def _name(v: Violations, path: str, value: str, *, required: bool = True) -> None:
    if required and not value:
        v.add(path, "required")
    elif len(value) > MAX_NAME:
        v.add(path, f"longer than {MAX_NAME} characters")
    elif CONTROL.search(value):
        v.add(path, "contains control characters")


def _non_negative(v: Violations, path: str, value: float, *, upper: float = math.inf) -> None:
    if not math.isfinite(value):
        v.add(path, "must be a finite number")
    elif value < 0 or value > upper:
        v.add(path, "must not be negative" if upper == math.inf else f"must be between 0 and {upper:g}")


def _duration(v: Violations, path: str, d: duration_pb2.Duration) -> None:
    mixed_signs = (d.seconds > 0 > d.nanos) or (d.seconds < 0 < d.nanos)
    if mixed_signs or abs(d.nanos) >= 1_000_000_000:
        v.add(path, "not a valid duration")
    elif d.seconds < 0 or d.nanos < 0:
        v.add(path, "must not be negative")
    elif d.seconds > MAX_DURATION_S:
        v.add(path, f"longer than {MAX_DURATION_S} seconds")


def _timestamp(v: Violations, path: str, ts: timestamp_pb2.Timestamp) -> None:
    if not (MIN_TIMESTAMP_S <= ts.seconds <= MAX_TIMESTAMP_S and 0 <= ts.nanos < 1_000_000_000):
        v.add(path, "not a valid timestamp")


def _precision(v: Violations, path: str, value: int) -> None:
    if value not in PRECISIONS:
        v.add(path, f"unknown precision {value}")


def metric_violations(m: types_pb2.ResultMetrics) -> list[FieldViolation]:
    """Every problem of one metric, with field paths relative to the metric."""
    v = Violations()
    _name(v, "task_id", m.task_id)
    if m.attempt < 1:
        v.add("attempt", "must be at least 1")
    _name(v, "assignment_token", m.assignment_token)
    for path, value in (("worker_id", m.worker_id), ("device_model", m.device_model)):
        _name(v, path, value)
    _name(v, "category", m.category)
    _name(v, "tenant", m.tenant)
    _name(v, "model.name", m.model.name, required=False)
    _name(v, "model.version", m.model.version, required=False)
    _precision(v, "precision", m.precision)
    if not 0 <= m.batch_size <= MAX_BATCH_SIZE:
        v.add("batch_size", f"must be between 0 and {MAX_BATCH_SIZE}")
    if m.outcome not in OUTCOMES:
        v.add("outcome", "required: SUCCEEDED, FAILED, CANCELLED or TIMED_OUT")
    if m.HasField("execution_time"):
        _duration(v, "execution_time", m.execution_time)
    elif m.outcome == types_pb2.OUTCOME_SUCCEEDED:
        v.add("execution_time", "required for a SUCCEEDED outcome")
    if m.HasField("queue_wait"):
        _duration(v, "queue_wait", m.queue_wait)
    _non_negative(v, "items_per_second", m.items_per_second)
    _non_negative(v, "gpu_power_watts", m.gpu_power_watts)
    # Workers report utilisation as a fraction of the device (services/worker/telemetry.py).
    _non_negative(v, "gpu_utilization", m.gpu_utilization, upper=1.0)
    _non_negative(v, "cpu_utilization", m.cpu_utilization, upper=1.0)
    if m.memory_bytes < 0:
        v.add("memory_bytes", "must not be negative")
    if m.HasField("finished_at"):
        _timestamp(v, "finished_at", m.finished_at)
    return v.items


def profile_key_violations(key: types_pb2.ProfileKey, prefix: str = "key") -> list[FieldViolation]:
    v = Violations()
    _name(v, f"{prefix}.device_model", key.device_model)
    _name(v, f"{prefix}.category", key.category)
    _name(v, f"{prefix}.model.name", key.model.name, required=False)
    _name(v, f"{prefix}.model.version", key.model.version, required=False)
    _precision(v, f"{prefix}.precision", key.precision)
    bucket = key.batch_bucket
    if bucket < 1 or bucket > MAX_BATCH_SIZE or bucket & (bucket - 1):
        v.add(f"{prefix}.batch_bucket", "must be a power of two (1, 2, 4, …)")
    return v.items


def check_get_profile(request: profile_store_pb2.GetProfileRequest) -> None:
    v = Violations()
    if not request.HasField("key"):
        v.add("key", "required")
    else:
        v.items.extend(profile_key_violations(request.key))
    v.raise_if_any()


def check_list_profiles(request: profile_store_pb2.ListProfilesRequest) -> None:
    v = Violations()
    _name(v, "model_name", request.model_name, required=False)
    _name(v, "device_model", request.device_model, required=False)
    _precision(v, "precision", request.precision)
    if not 0 <= request.page_size <= MAX_PAGE_SIZE:
        v.add("page_size", f"must be between 0 and {MAX_PAGE_SIZE}")
    if request.page_token:
        try:
            decode_page_token(request.page_token)
        except ValueError:
            v.add("page_token", "not a token this service issued")
    v.raise_if_any()


def encode_page_token(after: str) -> str:
    return base64.urlsafe_b64encode(b"p1:" + after.encode()).decode() if after else ""


def decode_page_token(token: str) -> str:
    """The key id a page token continues after; ValueError when it is not ours."""
    try:
        raw = base64.urlsafe_b64decode(token.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError("bad page token") from exc
    if not raw.startswith(b"p1:"):
        raise ValueError("bad page token")
    try:
        return raw[3:].decode()
    except UnicodeDecodeError as exc:
        raise ValueError("bad page token") from exc
