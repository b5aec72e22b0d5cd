"""The Celery app of the baseline: one no-op task, Redis as broker and result backend.

The worker is started by `bench.baselines.celery_bench` as
`celery -A bench.baselines.celery_app worker …`, with the Redis URL in BENCH_CELERY_REDIS.
"""

from __future__ import annotations

import os

from celery import Celery

REDIS_URL = os.environ.get("BENCH_CELERY_REDIS", "redis://127.0.0.1:6399/0")
NOOP = "bench.noop"


def make_app(url: str) -> Celery:
    """An app on the Redis at `url`; the driver makes a fresh one per session, because an
    app keeps its broker connection pool once used."""
    app = Celery("switchyard_bench", broker=url, backend=url)
    app.conf.update(
        broker_connection_retry_on_startup=True,
        result_expires=3600,
        task_ignore_result=False,
        worker_hijack_root_logger=False,
    )
    return app


app = make_app(REDIS_URL)


def _noop() -> None:
    return None


noop = app.task(name=NOOP)(_noop)
