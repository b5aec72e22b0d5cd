"""Fan-out of committed task changes to WatchTasks streams."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable

from services.scheduler.convert import task_to_proto
from services.scheduler.model import TaskRecord
from switchyard.v1 import types_pb2


class Subscription:
    def __init__(self, task_ids: Iterable[str], job_id: str | None) -> None:
        self.task_ids = set(task_ids)
        self.job_id = job_id
        self.queue: asyncio.Queue[types_pb2.Task] = asyncio.Queue()

    async def batches(self) -> AsyncIterator[list[types_pb2.Task]]:
        """Yield everything that arrived since the last batch (coalesced)."""
        while True:
            first = await self.queue.get()
            batch = [first]
            while not self.queue.empty():
                batch.append(self.queue.get_nowait())
            latest: dict[str, types_pb2.Task] = {}
            for task in batch:
                latest[task.id] = task
            yield list(latest.values())


class Watchers:
    def __init__(self) -> None:
        self._by_task: dict[str, set[Subscription]] = defaultdict(set)
        self._by_job: dict[str, set[Subscription]] = defaultdict(set)

    def subscribe(self, task_ids: Iterable[str], job_id: str | None) -> Subscription:
        sub = Subscription(task_ids, job_id)
        for tid in sub.task_ids:
            self._by_task[tid].add(sub)
        if job_id:
            self._by_job[job_id].add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        for tid in sub.task_ids:
            self._discard(self._by_task, tid, sub)
        if sub.job_id:
            self._discard(self._by_job, sub.job_id, sub)

    @staticmethod
    def _discard(index: dict[str, set[Subscription]], key: str, sub: Subscription) -> None:
        subs = index.get(key)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del index[key]

    def publish(self, records: Iterable[TaskRecord]) -> None:
        if not self._by_task and not self._by_job:
            return
        for record in records:
            subs = self._by_task.get(record.id, set()) | self._by_job.get(record.job_id, set())
            if subs:
                proto = task_to_proto(record)
                for sub in subs:
                    sub.queue.put_nowait(proto)
