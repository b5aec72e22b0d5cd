"""In-process fan-out of profile and tenant-score changes to watch streams.

The ingest path publishes what each batch changed; every subscriber keeps only the latest
value per key and wakes at most once per coalescing window, so a watcher gets one message
per window holding every change, however many samples arrived in it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Generic, TypeVar

from services.profile_store.model import IngestResult, Profile, TenantScore

T = TypeVar("T")


class Subscription(Generic[T]):
    """One watcher's pending changes; use as a context manager to unsubscribe on exit."""

    def __init__(self, topic: Topic[T]) -> None:
        self._topic = topic
        self._pending: dict[str, T] = {}
        self._wake = asyncio.Event()

    def offer(self, items: Mapping[str, T]) -> None:
        self._pending.update(items)
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    async def next_batch(self) -> list[T] | None:
        """Changes of the next window (after the first change, wait the window, drain);
        None once the topic is closed."""
        while True:
            await self._wake.wait()
            if self._topic.closed:
                return None
            await asyncio.sleep(self._topic.coalesce_s)
            self._wake.clear()
            if self._topic.closed:
                return None
            if self._pending:
                items = list(self._pending.values())
                self._pending.clear()
                return items

    def __enter__(self) -> Subscription[T]:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._topic.unsubscribe(self)


class Topic(Generic[T]):
    def __init__(self, coalesce_s: float) -> None:
        self.coalesce_s = coalesce_s
        self.closed = False
        self._subscribers: set[Subscription[T]] = set()

    def subscribe(self) -> Subscription[T]:
        sub = Subscription(self)
        self._subscribers.add(sub)
        if self.closed:
            sub.wake()
        return sub

    def unsubscribe(self, sub: Subscription[T]) -> None:
        self._subscribers.discard(sub)

    def publish(self, items: Mapping[str, T]) -> None:
        if not items:
            return
        for sub in self._subscribers:
            sub.offer(items)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def close(self) -> None:
        self.closed = True
        for sub in self._subscribers:
            sub.wake()


class ChangeFeed:
    """The two topics of the profile store, fed from each ingested batch's result."""

    def __init__(self, coalesce_s: float) -> None:
        self.profiles: Topic[Profile] = Topic(coalesce_s)
        self.scores: Topic[TenantScore] = Topic(coalesce_s)

    def publish(self, result: IngestResult) -> None:
        self.profiles.publish({p.key.id: p for p in result.profiles})
        # Any usage change rescales every tenant's fraction, so scores come whole.
        self.publish_scores(result.scores)

    def publish_scores(self, scores: Sequence[TenantScore]) -> None:
        self.scores.publish({s.tenant: s for s in scores})

    def close(self) -> None:
        self.profiles.close()
        self.scores.close()
