"""Plain-text tables and JSON for the command line and the demo."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from google.protobuf import json_format, timestamp_pb2
from google.protobuf.message import Message

from switchyard.errors import SwitchyardError
from switchyard.specs import enum_name
from switchyard.v1 import classifier_pb2, types_pb2

PROFILE_HEADERS = (
    "DEVICE", "MODEL", "PRECISION", "BATCH", "CATEGORY", "COUNT",
    "MEAN", "EWMA", "P50", "P95", "P99", "ITEMS/S",
)  # fmt: skip
TENANT_HEADERS = ("TENANT", "SHARE", "USAGE (REF-S)", "USAGE SCORE", "FAIR-SHARE FACTOR")

TASK_HEADERS = ("TASK", "JOB", "CATEGORY", "STATE", "GROUP", "WORKER", "TRY", "LATENCY", "ERROR")


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Columns padded to their widest cell; the last column is not padded."""
    cells = [[str(h) for h in headers], *([_cell(v) for v in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def to_json(value: Message | Sequence[Message] | dict[str, Any]) -> str:
    """Proto-JSON with the proto field names (as `--json` prints and `--file` reads)."""
    return json.dumps(_jsonable(value), indent=2, sort_keys=False)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Message):
        return json_format.MessageToDict(value, preserving_proto_field_name=True)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def state(value: int) -> str:
    return enum_name(types_pb2.TaskState, "TASK_STATE_", value)


def eligibility(value: int) -> str:
    return enum_name(types_pb2.Eligibility, "ELIGIBILITY_", value)


def clock(ts: timestamp_pb2.Timestamp) -> str:
    """HH:MM:SS.mmm local time, or "-" when unset."""
    if not ts.seconds and not ts.nanos:
        return "-"
    return ts.ToDatetime().astimezone().strftime("%H:%M:%S.%f")[:-3]


def seconds_between(start: timestamp_pb2.Timestamp, end: timestamp_pb2.Timestamp) -> float | None:
    if not (start.seconds or start.nanos) or not (end.seconds or end.nanos):
        return None
    return (end.ToNanoseconds() - start.ToNanoseconds()) / 1e9


def duration(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.2f}s"


def task_row(task: types_pb2.Task) -> list[object]:
    error = f"{task.error.reason}: {task.error.message}" if task.error.reason or task.error.message else ""
    return [
        task.id,
        task.job_id,
        task.category or task.spec.category,
        state(task.state),
        eligibility(task.eligibility),
        task.worker_id,
        task.attempt,
        duration(seconds_between(task.submitted_at, task.finished_at)),
        error,
    ]


def tasks_table(tasks: Iterable[types_pb2.Task]) -> str:
    return table(TASK_HEADERS, (task_row(t) for t in tasks))


def classifications_table(
    specs: Sequence[types_pb2.TaskSpec], found: Sequence[classifier_pb2.Classification]
) -> str:
    rows = [
        [i, s.category, c.category, eligibility(c.eligibility), c.priority_class, c.rule]
        for i, (s, c) in enumerate(zip(specs, found, strict=False))
    ]
    return table(("#", "ASKED", "CATEGORY", "GROUP", "PRIORITY CLASS", "RULE"), rows)


def job_text(job: types_pb2.Job) -> str:
    head = table(
        ("JOB", "TENANT", "STATE", "DONE", "TOTAL", "CREATED"),
        [
            [
                job.id,
                job.tenant,
                enum_name(types_pb2.JobState, "JOB_STATE_", job.state),
                job.progress.done,
                job.progress.total,
                clock(job.created_at),
            ]
        ],
    )
    counts = sorted((k.removeprefix("TASK_STATE_"), v) for k, v in job.progress.by_state.items())
    by_state = table(("STATE", "TASKS"), counts)
    return f"{head}\n\n{by_state}"


def explanation_text(explanation: types_pb2.Explanation) -> str:
    head = (
        f"task {explanation.task_id}: {state(explanation.state)}, priority {explanation.priority:.4g}, "
        f"queue position {explanation.queue_position}"
    )
    factors = table(
        ("FACTOR", "VALUE", "WEIGHT", "CONTRIBUTION"),
        [
            [f.name, f"{f.value:.3f}", f"{f.weight:g}", f"{f.value * f.weight:.4g}"]
            for f in explanation.factors
        ],
    )
    reasons = "\n".join(f"  - {r}" for r in explanation.wait_reasons) or "  (none)"
    return f"{head}\n\n{factors}\n\nwaiting because:\n{reasons}"


def error_lines(error: SwitchyardError) -> list[str]:
    """One clear line, then one line per field or quota violation."""
    line = f"error: {error}"
    if error.request_id:
        line += f" (request id {error.request_id})"
    lines = [line]
    lines += [f"  - {v.field}: {v.description}" for v in error.field_violations]
    lines += [f"  - quota {v.subject}: {v.description}" for v in error.quota_violations]
    if error.retry_delay is not None:
        lines.append(f"  retry after {error.retry_delay:g}s")
    return lines


def profiles_table(profiles: Iterable[types_pb2.Profile]) -> str:
    """One row per profile key, times in ms/s (`switchyard profiles`)."""
    rows = []
    for p in profiles:
        k = p.key
        model = f"{k.model.name}:{k.model.version}" if k.model.version else k.model.name
        rows.append(
            [
                k.device_model,
                model,
                enum_name(types_pb2.Precision, "PRECISION_", k.precision),
                f"<={k.batch_bucket}",
                k.category,
                p.count,
                duration(p.mean_seconds),
                duration(p.ewma_seconds),
                duration(p.p50_seconds),
                duration(p.p95_seconds),
                duration(p.p99_seconds),
                f"{p.items_per_second:.1f}",
            ]
        )
    return table(PROFILE_HEADERS, rows)


def tenant_scores_table(scores: Iterable[types_pb2.TenantScore]) -> str:
    """One row per tenant (`switchyard tenants`); a lower usage score is served first."""
    rows = [
        [
            s.tenant,
            f"{s.share:g}",
            f"{s.decayed_usage:.2f}",
            f"{s.usage_score:.3f}",
            f"{s.fair_share_factor:.3f}",
        ]
        for s in scores
    ]
    return table(TENANT_HEADERS, rows)
