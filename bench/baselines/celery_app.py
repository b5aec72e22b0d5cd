"""The Celery app of the baseline: one no-op task, Redis as broker and result backend.

The worker is started by `bench.baselines.celery_bench` as
`celery -A bench.baselines.celery_app worker …`, with the Redis URL in BENCH_CELERY_REDIS.
"""

from __future__ import annotations

import os

from celery import Celery

REDIS_URL = os.environ.get("BENCH_CELERY_REDIS", "redis://127.0.0.1:6399/0")

app = Celery("switchyard_bench", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(
    broker_connection_retry_on_startup=True,
    result_expires=3600,
    task_ignore_result=False,
    worker_hijack_root_logger=False,
)


def _noop() -> None:
    return None


noop = app.task(name="bench.noop")(_noop)
