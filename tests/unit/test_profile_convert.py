"""Proto ↔ domain round trips, metric validation, page tokens, config and the change feed."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime

import pytest
from google.rpc import status_pb2

from common.config import load_config
from common.errors import ConfigError
from services.profile_store import convert, validate
from services.profile_store.config import ProfileStoreConfig
from services.profile_store.feed import ChangeFeed
from services.profile_store.model import (
    IngestResult,
    Metric,
    ModelRef,
    Outcome,
    Precision,
    Profile,
    ProfileKey,
    TenantScore,
)
from switchyard.v1 import types_pb2

WHEN = datetime(2030, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
KEY = ProfileKey(
    device_model="h100", model=ModelRef(name="bert", version="2"), precision=Precision.INT8,
    batch_bucket=64, category="inference",
)  # fmt: skip


def a_metric(**changes: object) -> Metric:
    values: dict[str, object] = dict(
        task_id="t1", attempt=2, assignment_token="tok", worker_id="w", device_model="h100",
        model=ModelRef(name="bert", version="2"), precision=Precision.BF16, batch_size=48,
        category="inference", tenant="acme", queue_wait_s=0.5, execution_time_s=1.25,
        items_per_second=38.4, gpu_utilization=0.9, cpu_utilization=0.1, memory_bytes=1 << 30,
        gpu_power_watts=250.0, outcome=Outcome.TIMED_OUT, finished_at=WHEN,
    )  # fmt: skip
    values.update(changes)
    return Metric(**values)  # type: ignore[arg-type]


def a_profile() -> Profile:
    return Profile(
        key=KEY, count=7, mean_seconds=1.5, ewma_seconds=1.4, variance=0.2, p50_seconds=1.4,
        p95_seconds=2.0, p99_seconds=2.5, items_per_second=42.0, updated_at=WHEN,
    )  # fmt: skip


@pytest.mark.parametrize(
    "m",
    [
        a_metric(),
        a_metric(queue_wait_s=None, execution_time_s=None, finished_at=None, precision=Precision.UNSPECIFIED),
    ],
)
def test_metric_round_trip(m: Metric) -> None:
    assert convert.metric_from_proto(convert.metric_to_proto(m)) == m
    assert m.profile_key.batch_bucket == 64


def test_profile_key_profile_and_score_round_trips() -> None:
    assert convert.profile_key_from_proto(convert.profile_key_to_proto(KEY)) == KEY
    assert convert.profile_from_proto(convert.profile_to_proto(a_profile())) == a_profile()
    score = TenantScore(tenant="a", share=2.0, decayed_usage=12.5, usage_score=0.8, fair_share_factor=2**-0.8)
    assert convert.tenant_score_from_proto(convert.tenant_score_to_proto(score)) == score


def test_valid_metric_has_no_violations() -> None:
    assert validate.metric_violations(convert.metric_to_proto(a_metric())) == []


def test_every_problem_of_a_metric_is_reported() -> None:
    m = types_pb2.ResultMetrics(attempt=0, tenant="x" * 300, batch_size=-1, memory_bytes=-5)
    m.items_per_second = math.nan
    m.precision = 99  # type: ignore[assignment]  # an enum value this build does not know
    m.queue_wait.seconds = -3
    m.outcome = types_pb2.OUTCOME_SUCCEEDED
    fields = {v.field for v in validate.metric_violations(m)}
    assert fields == {
        "task_id", "attempt", "assignment_token", "worker_id", "device_model", "category", "tenant",
        "precision", "batch_size", "execution_time", "queue_wait", "items_per_second", "memory_bytes",
    }  # fmt: skip
    no_outcome = convert.metric_to_proto(a_metric())
    no_outcome.outcome = types_pb2.OUTCOME_UNSPECIFIED
    assert [v.field for v in validate.metric_violations(no_outcome)] == ["outcome"]


def test_page_tokens() -> None:
    after = KEY.id
    assert validate.decode_page_token(validate.encode_page_token(after)) == after
    assert validate.encode_page_token("") == ""
    for bad in ("garbage!", "aGVsbG8=", "é"):
        with pytest.raises(ValueError):
            validate.decode_page_token(bad)


def test_config_defaults_and_problems() -> None:
    config = load_config(ProfileStoreConfig, env={"SWITCHYARD_PROFILE_STORE_EWMA_ALPHA": "0.3"})
    assert config.port == 50053 and config.ewma_alpha == 0.3 and config.ingest_batch_max == 500
    with pytest.raises(ConfigError) as caught:
        load_config(
            ProfileStoreConfig,
            overrides={"ewma_alpha": 0, "database_url": "mysql://x", "ingest_batch_max": 0},
        )
    assert len(caught.value.problems) == 3


async def test_feed_coalesces_changes_per_window() -> None:
    feed = ChangeFeed(coalesce_s=0.05)
    with feed.profiles.subscribe() as sub:
        older = a_profile()
        newer = Profile(**{**older.__dict__, "count": 8})
        feed.publish(IngestResult(duplicates=[False], profiles=[older]))
        feed.publish(IngestResult(duplicates=[False], profiles=[newer]))
        assert await asyncio.wait_for(sub.next_batch(), 10) == [newer]
        feed.close()
        assert await asyncio.wait_for(sub.next_batch(), 10) is None
    assert feed.profiles.subscriber_count == 0


def test_ingest_response_acks_stored_duplicate_and_rejected_metrics_in_order() -> None:
    protos = [types_pb2.ResultMetrics(task_id=f"t{i}", attempt=i + 1) for i in range(3)]
    stored = [
        Metric(task_id=p.task_id, attempt=p.attempt, worker_id="w", device_model="d", category="c",
               tenant="t", outcome=Outcome.SUCCEEDED)
        for p in protos
    ]  # fmt: skip
    rejected = status_pb2.Status(code=3, message="task_id: required")
    response = convert.ingest_response(protos, [stored[0], rejected, stored[2]], [False, True])
    got = [(a.task_id, a.attempt, a.duplicate, a.HasField("status"), a.status.code) for a in response.acks]
    assert got == [("t0", 1, False, False, 0), ("t1", 2, False, True, 3), ("t2", 3, True, False, 0)]
