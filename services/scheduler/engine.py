"""The scheduler's live state and its transitions.

It owns the non-terminal tasks, the group queues and the workers; the pure policy
(`core/`) decides, this module applies the decisions, persists them through the group
committer, and tells workers and watchers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from common.tokens import sign_assignment
from services.scheduler.admission import check_dependencies, idempotent_hits, unreachable_deadline
from services.scheduler.commit import Committer
from services.scheduler.config import SchedulerConfig
from services.scheduler.convert import record_from_proto, task_to_proto
from services.scheduler.core.clock import Clock
from services.scheduler.core.cycle import CycleLimits, SchedulerView, plan_cycle
from services.scheduler.core.model import Group
from services.scheduler.core.placement import Priors
from services.scheduler.core.priority import PriorityWeights, priority_value
from services.scheduler.core.queues import GroupQueue
from services.scheduler.deps import Dependencies
from services.scheduler.model import JobRecord, TaskRecord, TaskState
from services.scheduler.profiles import ProfileCache
from services.scheduler.store import TaskStore
from services.scheduler.tenants import TenantBook
from services.scheduler.watch import Watchers
from services.scheduler.workers import WorkerRegistry
from switchyard.v1 import scheduler_pb2, types_pb2

log = logging.getLogger(__name__)


class Engine:
    def __init__(
        self, config: SchedulerConfig, store: TaskStore, clock: Clock, profiles: ProfileCache
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.profiles = profiles
        self.tasks: dict[str, TaskRecord] = {}
        # Terminal tasks kept after their write is durable, newest last: a client asks for a
        # result just after it lands, and the answer then needs no database read.
        self.recent: dict[str, TaskRecord] = {}
        self.recent_max = config.recent_results_max
        self.queues: dict[Group, GroupQueue] = {g: GroupQueue() for g in Group}
        self.workers = WorkerRegistry()
        self.watchers = Watchers()
        self.deps = Dependencies()
        self.committer = Committer(
            store,
            batch_max=config.commit_batch_max,
            defer_s=config.commit_defer_s,
            on_committed=self._committed,
        )
        self.weights = PriorityWeights(
            category=config.weight_category,
            qos=config.weight_qos,
            fair_share=config.weight_fair_share,
            age=config.weight_age,
        )
        self.priors = Priors(cpu_seconds=config.prior_cpu_seconds, gpu_seconds=config.prior_gpu_seconds)
        self.wake = asyncio.Event()
        self._idempotent: dict[tuple[str, str], str] = {}
        self.tenants = TenantBook()
        # False while this scheduler is a standby (another one holds the leadership lock).
        self.active = False
        profiles.shares = self.tenants.shares

    # ---- admission -------------------------------------------------------------------

    async def enqueue(self, incoming: Sequence[types_pb2.Task]) -> list[TaskRecord]:
        """Store classified tasks durably, then queue them; returns the stored records."""
        now = self.clock.now()
        records = [record_from_proto(t, now) for t in incoming]
        existing = await idempotent_hits(self.store, self.tasks, records)
        fresh = [r for r in records if (r.tenant, r.idempotency_key or "") not in existing]
        for tenant in sorted({r.tenant for r in fresh}):
            self.tenants.admit(tenant, sum(1 for r in fresh if r.tenant == tenant), now)
        await check_dependencies(self.store, self.tasks, fresh)
        failed_deps = await self.deps.prepare(fresh, self.tasks, self.store)
        fresh = self._claim_keys(fresh, existing)
        for record in fresh:
            record.queued_at = now
            unreachable = self._unreachable_deadline(record, now)
            if unreachable:
                self.finish(record, TaskState.EXPIRED, "DEADLINE_UNREACHABLE", unreachable, now)
            elif record.id in failed_deps:
                self.finish(record, TaskState.FAILED, "DEPENDENCY_FAILED", failed_deps[record.id], now)
            elif self.deps.unmet(record.id):
                record.state = TaskState.PENDING
        jobs = {r.job_id: JobRecord(r.job_id, r.tenant, now) for r in fresh}
        fair = {t: self.profiles.fair_share(t, now) for t in {r.tenant for r in fresh}}
        # Queued (and so placed and dispatched) while the insert commits: the answer still
        # waits for the insert, but the run overlaps its fsync. Execution is at-least-once;
        # should the insert fail, the tasks are taken back before the error is returned.
        for record in fresh:
            self._admit(record, fair.get(record.tenant), now)
        self.wake.set()
        try:
            await self.committer.insert(fresh, list(jobs.values()))
        except Exception:
            self._withdraw(fresh)
            raise
        if any(r.state.terminal and self.tasks.get(r.id) is r for r in fresh):
            # a task that finished meanwhile is shown once durable
            await self.committer.flush(deferred=False)
        return [existing.get((r.tenant, r.idempotency_key), r) if r.idempotency_key else r for r in records]

    def _claim_keys(
        self, fresh: list[TaskRecord], existing: dict[tuple[str, str], TaskRecord]
    ) -> list[TaskRecord]:
        """The first task of each idempotency key in this batch, unless a live task holds the
        key (a concurrent submit admitted it while this one awaited). Runs with no await
        between it and admission, so two submits of one key cannot both be admitted."""
        kept = []
        for record in fresh:
            if record.idempotency_key:
                key = (record.tenant, record.idempotency_key)
                holder = self.tasks.get(self._idempotent.get(key, ""))
                if holder is not None:
                    existing[key] = holder
                if key in existing:
                    self.deps.forget(record.id)
                    continue
                existing[key] = record
            kept.append(record)
        return kept

    def _withdraw(self, records: Sequence[TaskRecord]) -> None:
        """Forget tasks whose insert failed: off the queues, and stopped where they run (the
        worker's CANCELLED outcome gives the slot back and is discarded as late)."""
        for record in records:
            if self.tasks.get(record.id) is not record:
                continue
            self.queues[record.demand.group].remove(record.id)
            link = self.workers.get(record.worker_id) if record.worker_id else None
            if link is not None and not record.state.terminal:
                link.send(
                    scheduler_pb2.ConnectWorkerResponse(
                        cancel=scheduler_pb2.CancelAssignments(task_ids=[record.id])
                    )
                )
            self._count(record, -1)
            self.profiles.stopped(record.id)
            del self.tasks[record.id]
            if record.idempotency_key:
                self._idempotent.pop((record.tenant, record.idempotency_key), None)
        self.committer.forget([r.id for r in records])

    def _unreachable_deadline(self, record: TaskRecord, now: float) -> str | None:
        return unreachable_deadline(record.demand, self.workers.fleet, self.profiles, self.priors, now)

    def _admit(self, record: TaskRecord, fair: float | None = None, now: float | None = None) -> None:
        if record.state.terminal:
            return
        self.tasks[record.id] = record
        self._count(record, +1)
        if record.idempotency_key:
            self._idempotent[(record.tenant, record.idempotency_key)] = record.id
        if record.state is TaskState.QUEUED:
            self._push(record, fair, now)

    def _count(self, record: TaskRecord, delta: int) -> None:
        if record.state in (TaskState.PENDING, TaskState.QUEUED):
            self.tenants.count(self.tenants.queued, record.tenant, delta)
        elif record.state in (TaskState.ASSIGNED, TaskState.RUNNING):
            self.tenants.count(self.tenants.running, record.tenant, delta)

    def move(self, record: TaskRecord, state: TaskState) -> None:
        """Change an admitted task's state, keeping the per-tenant counts right."""
        admitted = self.tasks.get(record.id) is record
        if admitted:
            self._count(record, -1)
        if record.state is TaskState.RUNNING and state is not TaskState.RUNNING:
            self.profiles.stopped(record.id)
        record.state = state
        if admitted:
            self._count(record, +1)

    def _push(self, record: TaskRecord, fair: float | None = None, now: float | None = None) -> None:
        # One `now` per admitted batch: its tasks tie on age and keep their arrival order.
        now = self.clock.now() if now is None else now
        if fair is None:
            fair = self.profiles.fair_share(record.tenant, now)
        self.queues[record.demand.group].push(
            record.id, priority_value(record.demand, now, fair, self.weights)
        )

    def reprioritize(self) -> None:
        now = self.clock.now()
        for queue in self.queues.values():
            queue.reprioritize(
                lambda tid: priority_value(
                    self.tasks[tid].demand,
                    now,
                    self.profiles.fair_share(self.tasks[tid].tenant, now),
                    self.weights,
                )
            )

    # ---- placement -------------------------------------------------------------------

    def view(self) -> SchedulerView:
        def demand(task_id: str) -> object:
            record = self.tasks.get(task_id)
            return None if record is None else record.demand

        return SchedulerView(
            queues=self.queues,
            task=demand,  # type: ignore[arg-type]
            fleet=self.workers.fleet,
            estimator=self.profiles,
            priors=self.priors,
            tenant_room=self._tenant_room,
        )

    def _tenant_room(self, tenant: str) -> int | None:
        cap = self.tenants.quotas[tenant].max_running if tenant in self.tenants.quotas else 0
        return max(cap - self.tenants.running.get(tenant, 0), 0) if cap else None

    async def run_cycle(self) -> int:
        """(1) snapshot → (2) decide → (3) persist → (4) dispatch. Returns placements made."""
        decisions = plan_cycle(self.view(), self.clock, CycleLimits(self.config.max_placements_per_cycle))
        now = self.clock.now()
        changed: list[TaskRecord] = []
        for expiry in decisions.expiries:
            record = self.tasks[expiry.task_id]
            self.queues[record.demand.group].remove(record.id)
            changed.append(self.finish(record, TaskState.EXPIRED, "DEADLINE_PASSED", expiry.reason, now))
        outbox: dict[str, list[scheduler_pb2.Assignment]] = {}
        assigned: list[TaskRecord] = []
        for placement in decisions.placements:
            record = self.tasks[placement.task_id]
            link = self.workers.get(placement.worker_id)
            if link is None:
                continue
            self.queues[record.demand.group].remove(record.id)
            self.move(record, TaskState.ASSIGNED)
            record.worker_id, record.assigned_at = link.slots.worker_id, now
            record.attempt += 1
            record.token = sign_assignment(
                self.config.internal_token, record.id, record.attempt, record.worker_id
            )
            if placement.misses_deadline and "predicted to miss its deadline" not in record.flags:
                record.flags.append("predicted to miss its deadline")
            self.workers.adjust(link.slots, -1)
            link.slots.running.add(record.id)
            assigned.append(record)
            outbox.setdefault(link.slots.worker_id, []).append(self._assignment(record))
        if changed:
            self.committer.update(changed)
        if assigned:
            # Dispatch does not wait for the ASSIGNED write: execution is at-least-once, and
            # after a crash the task is requeued whether or not that write landed (DESIGN §3).
            self.committer.defer(assigned)
        for worker_id, assignments in outbox.items():
            link = self.workers.get(worker_id)
            if link is not None:
                link.send(
                    scheduler_pb2.ConnectWorkerResponse(
                        assignments=scheduler_pb2.Assignments(assignments=assignments)
                    )
                )
        return len(decisions.placements)

    def _assignment(self, record: TaskRecord) -> scheduler_pb2.Assignment:
        return scheduler_pb2.Assignment(task=task_to_proto(record), assignment_token=record.token)

    def requeue(self, record: TaskRecord) -> None:
        self.move(record, TaskState.QUEUED)
        record.worker_id, record.token = None, ""
        record.assigned_at = record.started_at = None
        self.committer.update([record])
        self._push(record)
        self.wake.set()

    def finish(
        self, record: TaskRecord, state: TaskState, reason: str | None, message: str | None, now: float
    ) -> TaskRecord:
        """Make a task terminal, release its dependents, and queue the write."""
        self.move(record, state)
        record.finished_at = now
        record.error_reason, record.error_message = reason, message
        self.committer.update([record])
        for dependent, why in self.deps.resolved(record):
            child = self.tasks.get(dependent)
            if child is None or child.state is not TaskState.PENDING:
                continue
            if why is None:
                self.move(child, TaskState.QUEUED)
                self.committer.update([child])
                self._push(child)
            else:
                self.finish(child, TaskState.FAILED, "DEPENDENCY_FAILED", why, now)
        self.wake.set()
        return record

    def _committed(self, records: list[TaskRecord]) -> None:
        self.watchers.publish(records)
        for record in records:
            if record.state.terminal and self.tasks.get(record.id) is record:
                del self.tasks[record.id]
                self.recent[record.id] = record
                if len(self.recent) > self.recent_max:
                    del self.recent[next(iter(self.recent))]
                if record.idempotency_key:
                    self._idempotent.pop((record.tenant, record.idempotency_key), None)

    # ---- workers ---------------------------------------------------------------------

    def worker_lost(self, worker_id: str, why: str) -> None:
        link = self.workers.remove(worker_id)
        if link is None:
            return
        log.warning("worker lost", extra={"worker_id": worker_id, "why": why})
        now = self.clock.now()
        for task_id in sorted(link.slots.running):
            record = self.tasks.get(task_id)
            if record is None or record.worker_id != worker_id or record.state.terminal:
                continue
            if record.attempt < self.config.max_attempts:
                self.requeue(record)
            else:
                self.finish(record, TaskState.FAILED, "WORKER_LOST", f"worker {worker_id} lost: {why}", now)
        link.close()

    def sweep(self) -> None:
        for worker_id in self.workers.stale(self.clock.now(), self.config.heartbeat_timeout_s):
            self.worker_lost(worker_id, "no heartbeat")

    def cancel(self, records: list[TaskRecord]) -> list[TaskRecord]:
        now = self.clock.now()
        for record in records:
            if record.state.terminal or self.tasks.get(record.id) is not record:
                continue
            self.queues[record.demand.group].remove(record.id)
            if record.state in (TaskState.ASSIGNED, TaskState.RUNNING) and record.worker_id:
                link = self.workers.get(record.worker_id)
                if link is not None:
                    link.send(
                        scheduler_pb2.ConnectWorkerResponse(
                            cancel=scheduler_pb2.CancelAssignments(task_ids=[record.id])
                        )
                    )
            self.finish(record, TaskState.CANCELLED, "CANCELLED", "cancelled by the tenant", now)
        return records

    async def restore(self) -> int:
        """Rebuild queues from the database after a restart; returns tasks restored."""
        records = await self.store.load_unfinished()
        pending = [r for r in records if r.state is TaskState.PENDING]
        orphaned = []
        for record in records:
            if record.state in (TaskState.ASSIGNED, TaskState.RUNNING):
                # Workers stop their tasks when they lose the scheduler, so these run again.
                record.state, record.worker_id = TaskState.QUEUED, None
                record.assigned_at = record.started_at = None
                orphaned.append(record)
        await self.deps.restore(records, self.store)
        for record in records:
            self._admit(record)
        changed = orphaned + [r for r in pending if r.state is not TaskState.PENDING]
        if changed:
            self.committer.update(changed)
            await self.committer.flush()
        return len(records)
