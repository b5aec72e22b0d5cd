"""Reads over live and stored tasks, always on one tenant's behalf."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence

from common.errors import NotFound
from services.scheduler.convert import explanation_to_proto, job_to_proto, task_to_proto
from services.scheduler.core.priority import factors
from services.scheduler.engine import Engine
from services.scheduler.model import TaskRecord, TaskState
from switchyard.v1 import types_pb2


class Queries:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def tasks(self, tenant: str, task_ids: Sequence[str]) -> list[TaskRecord]:
        """The tenant's tasks, in the order asked; any other id is NOT_FOUND."""
        engine = self.engine
        live = {tid: engine.tasks[tid] for tid in task_ids if tid in engine.tasks}
        await self._durable(live.values())
        # Finished and durable (no wait), or else only in the database.
        live.update((tid, engine.recent[tid]) for tid in task_ids if tid not in live and tid in engine.recent)
        missing = [t for t in task_ids if t not in live]
        stored = {r.id: r for r in await engine.store.get(missing)} if missing else {}
        out = []
        for tid in task_ids:
            record = live.get(tid) or stored.get(tid)
            if record is None or record.tenant != tenant:
                raise NotFound("task", tid)
            out.append(record)
        return out

    async def _durable(self, records: Iterable[TaskRecord]) -> None:
        """A live task is terminal only until that write is durable: answer once it is, so no
        reader sees a result that a crash could still take back. A commit forgets a task
        whose terminal state it wrote; one that finished while the flush waited is waited
        for too (each task ends once, so this ends)."""
        engine = self.engine
        records = list(records)
        while any(r.state.terminal and engine.tasks.get(r.id) is r for r in records):
            await engine.committer.flush(deferred=False)

    def _fresh(self, rows: Iterable[TaskRecord]) -> list[TaskRecord]:
        return [self.engine.tasks.get(r.id, r) for r in rows]

    async def list_tasks(
        self, tenant: str, job_id: str, states: Sequence[TaskState], page_size: int, page_token: str
    ) -> tuple[list[TaskRecord], str]:
        size = min(page_size or 100, 1000)
        rows = await self.engine.store.list_tasks(
            tenant=tenant, job_id=job_id or None, states=states, limit=size + 1, after_id=page_token or None
        )
        fresh = self._fresh(rows[:size])
        await self._durable(fresh)
        return fresh, rows[size - 1].id if len(rows) > size else ""

    async def job(self, tenant: str, job_id: str) -> types_pb2.Job:
        job = await self.engine.store.get_job(tenant, job_id)
        if job is None:
            raise NotFound("job", job_id)
        rows = await self.engine.store.list_tasks(
            tenant=tenant, job_id=job_id, states=(), limit=1_000_000, after_id=None
        )
        records = self._fresh(rows)
        await self._durable(records)
        counts: dict[TaskState, int] = {}
        for record in records:
            counts[record.state] = counts.get(record.state, 0) + 1
        return job_to_proto(job, counts, [r.id for r in records])

    async def explain(self, tenant: str, task_id: str) -> types_pb2.Explanation:
        (record,) = await self.tasks(tenant, [task_id])
        engine = self.engine
        now = engine.clock.now()
        fair = engine.profiles.fair_share(record.tenant, now)
        breakdown = factors(record.demand, now, fair, engine.weights)
        reasons = self._reasons(record)
        position = engine.queues[record.demand.group].position(record.id)
        return explanation_to_proto(record, breakdown, reasons, position)

    def _reasons(self, record: TaskRecord) -> list[str]:
        if record.state is TaskState.PENDING:
            unmet = sorted(self.engine.deps.unmet(record.id))
            return [f"waiting on dependencies: {', '.join(unmet)}"]
        if record.state is TaskState.QUEUED:
            reasons = self.engine.workers.wait_reasons(record.demand) + list(record.flags)
            if self.engine.tenants.at_running_cap(record.tenant):
                cap = self.engine.tenants.quotas[record.tenant].max_running
                reasons.insert(0, f"quota: tenant {record.tenant!r} is at its running-task quota ({cap})")
            return reasons
        if record.state.terminal:
            reason = f": {record.error_reason}" if record.error_reason else ""
            return [f"finished {record.state.name}{reason}"]
        return [f"{record.state.name} on worker {record.worker_id}", *record.flags]

    async def watch(
        self, tenant: str, task_ids: Sequence[str], job_id: str
    ) -> AsyncIterator[list[types_pb2.Task]]:
        """The current state first, then every committed change, until all are terminal."""
        if job_id and await self.engine.store.get_job(tenant, job_id) is None:
            raise NotFound("job", job_id)
        sub = self.engine.watchers.subscribe(task_ids, job_id or None)
        try:
            current = await self.tasks(tenant, task_ids)
            if job_id:
                rows = await self.engine.store.list_tasks(
                    tenant=tenant, job_id=job_id, states=(), limit=1_000_000, after_id=None
                )
                asked = set(task_ids)
                extra = self._fresh(r for r in rows if r.id not in asked)
                await self._durable(extra)
                current += extra
            states = {r.id: r.state for r in current}
            yield [task_to_proto(r) for r in current]
            if all(s.terminal for s in states.values()):
                return
            async for batch in sub.batches():
                for task in batch:
                    states[task.id] = TaskState(task.state)
                yield batch
                if all(s.terminal for s in states.values()):
                    return
        finally:
            self.engine.watchers.unsubscribe(sub)
