"""Rows of the profile store's tables ↔ domain values, and the COPY text of samples."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, cast

import sqlalchemy as sa

from services.profile_store.model import Metric, ModelRef, Precision, Profile, ProfileKey
from services.profile_store.schema import (
    MetricSampleRow,
    ProfileRow,
    ResourceRow,
    TenantUsageRow,
    WorkerProfileRow,
)
from services.profile_store.stats import ProfileStats, QuantileSketch, Welford

SAMPLES = cast(sa.Table, MetricSampleRow.__table__)
PROFILES = cast(sa.Table, ProfileRow.__table__)
WORKER_PROFILES = cast(sa.Table, WorkerProfileRow.__table__)
RESOURCES = cast(sa.Table, ResourceRow.__table__)
TENANT_USAGE = cast(sa.Table, TenantUsageRow.__table__)
SAMPLE_COLUMNS = tuple(c.name for c in SAMPLES.columns)
KEY_COLUMNS = ("device_model", "model_name", "model_version", "precision", "batch_bucket", "category")
STAT_COLUMNS = ("count", "mean", "m2", "ewma", "sketch", "items_per_second", "updated_at")
# COPY's text format: backslash escapes, tab separates, newline ends a row, \N is NULL.
_NULL = "\\N"
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def sample_row(m: Metric, now: datetime) -> dict[str, Any]:
    return {
        "task_id": m.task_id,
        "attempt": m.attempt,
        "worker_id": m.worker_id,
        "device_model": m.device_model,
        "model_name": m.model.name,
        "model_version": m.model.version,
        "precision": m.precision.value,
        "batch_size": m.batch_size,
        "category": m.category,
        "tenant": m.tenant,
        "queue_wait_s": m.queue_wait_s,
        "execution_time_s": m.execution_time_s,
        "items_per_second": m.items_per_second,
        "gpu_utilization": m.gpu_utilization,
        "cpu_utilization": m.cpu_utilization,
        "memory_bytes": m.memory_bytes,
        "gpu_power_watts": m.gpu_power_watts,
        "outcome": m.outcome.value,
        "finished_at": m.finished_at,
        "received_at": now,
    }


def samples_copy_text(metrics: Sequence[Metric], now: datetime) -> str:
    """The rows of `metrics` in COPY text format, columns in SAMPLE_COLUMNS order.

    Validated names hold no control characters, so escaping is rarely needed: the rows are
    written plain, and only when the text holds a backslash or more separators than the
    columns account for are they written again with every text value escaped."""
    received = now.isoformat()
    text = "".join([_plain_line(m, received) for m in metrics])
    separators = len(SAMPLE_COLUMNS) - 1
    if (
        "\\" in text
        or "\r" in text
        or text.count("\n") != len(metrics)
        or (text.count("\t") != separators * len(metrics))
    ):
        text = "".join([_escaped_line(m, received) for m in metrics])
    return text


def _plain_line(m: Metric, received: str) -> str:
    # A StrEnum formats as its value; a float's repr is its shortest round-trip text.
    model, wait, ex, done = m.model, m.queue_wait_s, m.execution_time_s, m.finished_at
    return (
        f"{m.task_id}\t{m.attempt}\t{m.worker_id}\t{m.device_model}\t{model.name}\t{model.version}\t"
        f"{m.precision}\t{m.batch_size}\t{m.category}\t{m.tenant}\t"
        f"{_NULL if wait is None else repr(wait)}\t{_NULL if ex is None else repr(ex)}\t"
        f"{m.items_per_second!r}\t{m.gpu_utilization!r}\t{m.cpu_utilization!r}\t"
        f"{m.memory_bytes}\t{m.gpu_power_watts!r}\t{m.outcome}\t"
        f"{_NULL if done is None else done.isoformat()}\t{received}\n"
    )


def _escaped_line(m: Metric, received: str) -> str:
    texts = (m.task_id, m.worker_id, m.device_model, m.model.name, m.model.version, m.category, m.tenant)
    task_id, worker_id, device_model, name, version, category, tenant = (
        t.translate(_COPY_ESCAPES) for t in texts
    )
    escaped = replace(
        m, task_id=task_id, worker_id=worker_id, device_model=device_model,
        model=ModelRef(name=name, version=version), category=category, tenant=tenant,
    )  # fmt: skip
    return _plain_line(escaped, received)


def resource_rows(metrics: Sequence[Metric], now: datetime) -> list[tuple[Any, ...]]:
    """Each reporting worker (as its latest metric says), seen now; resends count too."""
    latest = {m.worker_id: m for m in metrics}
    return [(w, m.device_model, m.worker_kind, now) for w, m in sorted(latest.items())]


def key_values(key: ProfileKey) -> tuple[Any, ...]:
    """Values of KEY_COLUMNS."""
    return (
        key.device_model,
        key.model.name,
        key.model.version,
        key.precision.value,
        key.batch_bucket,
        key.category,
    )


def stat_values(stats: ProfileStats, now: datetime) -> tuple[Any, ...]:
    """Values of STAT_COLUMNS."""
    return (
        stats.moments.count,
        stats.moments.mean,
        stats.moments.m2,
        stats.ewma_seconds or 0.0,
        stats.sketch.to_bytes(),
        stats.items_per_second or 0.0,
        now,
    )


def stats_of(values: Mapping[Any, Any]) -> ProfileStats:
    """The running figures of a profile or worker-profile row."""
    return ProfileStats(
        moments=Welford(values["count"], values["mean"], values["m2"]),
        ewma_seconds=values["ewma"] if values["count"] > 0 else None,
        items_per_second=values["items_per_second"] or None,
        sketch=QuantileSketch.from_bytes(values["sketch"]),
    )


def profile_of_row(values: Mapping[Any, Any]) -> Profile:
    key = ProfileKey(
        device_model=values["device_model"],
        model=ModelRef(name=values["model_name"], version=values["model_version"]),
        precision=Precision(values["precision"]),
        batch_bucket=values["batch_bucket"],
        category=values["category"],
    )
    return profile_of(key, stats_of(values), aware(values["updated_at"]))


def profile_of(key: ProfileKey, stats: ProfileStats, updated_at: datetime) -> Profile:
    p50, p95, p99 = stats.quantiles()
    return Profile(
        key=key,
        count=stats.moments.count,
        mean_seconds=stats.moments.mean,
        ewma_seconds=stats.ewma_seconds or 0.0,
        variance=stats.moments.variance,
        p50_seconds=p50,
        p95_seconds=p95,
        p99_seconds=p99,
        items_per_second=stats.items_per_second or 0.0,
        updated_at=updated_at,
    )
