"""Group commit: ingest requests that arrive while a transaction runs share the next one.

Every IngestMetrics stream hands over the accepted metrics of a request as soon as they are
checked. One committer task stores whatever has gathered (whole requests, up to
`max_metrics` unless a single request is larger) in one store transaction, publishes the
changes once and gives each request its own slice of the result. Under load a transaction
carries several requests, from one pipelined stream or from many streams: one commit (one
WAL flush) for all of them, and the next requests are checked while PostgreSQL commits.
A request that finds the committer idle is committed at once.

Requests are stored in the order they were handed over, so a profile's samples fold in
that order (the EWMA depends on it), and a metric that comes again in a later request of
the same group is a duplicate, as it would be one transaction later. A request's future
resolves only after its transaction committed: acks never run ahead of the database.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence

from services.profile_store.feed import ChangeFeed
from services.profile_store.model import Metric
from services.profile_store.store import ProfileStore

DEFAULT_MAX_METRICS = 5000

# The metrics of one request and the future of their duplicate flags.
_Part = tuple[Sequence[Metric], "asyncio.Future[Sequence[bool]]"]


class GroupCommit:
    def __init__(
        self, store: ProfileStore, feed: ChangeFeed, *, max_metrics: int = DEFAULT_MAX_METRICS
    ) -> None:
        self._store = store
        self._feed = feed
        self._max = max_metrics
        self._pending: deque[_Part] = deque()
        self._task: asyncio.Task[None] | None = None
        # Committed so far: transactions, and the requests and metrics they carried.
        self.transactions = self.requests = self.metrics = 0

    def submit(self, metrics: Sequence[Metric]) -> asyncio.Future[Sequence[bool]]:
        """Queue one request's metrics for the next transaction. The future gives, once
        committed, `duplicates[i]` for metric i (see `IngestResult`), or the store's error."""
        future: asyncio.Future[Sequence[bool]] = asyncio.get_running_loop().create_future()
        if not metrics:
            future.set_result([])
            return future
        self._pending.append((metrics, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="profile-store-group-commit")
        return future

    async def close(self) -> None:
        """Let the transactions already queued finish."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        try:
            while self._pending:
                await self._commit(self._take())
        except asyncio.CancelledError:
            while self._pending:
                self._pending.popleft()[1].cancel()
            raise

    def _take(self) -> list[_Part]:
        group = [self._pending.popleft()]
        size = len(group[0][0])
        while self._pending and size + len(self._pending[0][0]) <= self._max:
            part = self._pending.popleft()
            group.append(part)
            size += len(part[0])
        return group

    async def _commit(self, group: list[_Part]) -> None:
        metrics = [m for part, _ in group for m in part]
        try:
            result = await self._store.ingest(metrics)
        except asyncio.CancelledError:
            for _, future in group:
                future.cancel()
            raise
        except Exception as exc:  # the store failed: every request of the group fails with it
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
            return
        self._feed.publish(result)
        self.transactions += 1
        self.requests += len(group)
        self.metrics += len(metrics)
        start = 0
        for part, future in group:
            if not future.done():
                future.set_result(result.duplicates[start : start + len(part)])
            start += len(part)
