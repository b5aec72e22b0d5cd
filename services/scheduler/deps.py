"""The starting condition of S8: a task is a candidate only when its dependencies succeeded."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from services.scheduler.model import TaskRecord, TaskState
from services.scheduler.store import TaskStore


class Dependencies:
    def __init__(self) -> None:
        self._unmet: dict[str, set[str]] = {}
        self._dependents: dict[str, set[str]] = defaultdict(set)

    def unmet(self, task_id: str) -> set[str]:
        return self._unmet.get(task_id, set())

    async def prepare(
        self, records: Sequence[TaskRecord], active: Mapping[str, TaskRecord], store: TaskStore
    ) -> dict[str, str]:
        """Register the unmet dependencies of new tasks; return task id → why it must fail."""
        batch = {r.id: r for r in records}
        lookup = {d for r in records for d in r.depends_on if d not in batch and d not in active}
        stored = {t.id: t for t in await store.get(sorted(lookup))}
        failed: dict[str, str] = {}
        for record in records:
            for dep in record.depends_on:
                owner = batch.get(dep) or active.get(dep) or stored.get(dep)
                if owner is None or owner.state is TaskState.SUCCEEDED:
                    continue
                if owner.state.terminal:
                    failed[record.id] = f"dependency {dep} ended {owner.state.name}"
                    break
                self._unmet.setdefault(record.id, set()).add(dep)
                self._dependents[dep].add(record.id)
        for task_id in failed:
            self.forget(task_id)
        return failed

    def resolved(self, record: TaskRecord) -> list[tuple[str, str | None]]:
        """A task ended: which dependents became ready (None) or must fail (the reason)."""
        out: list[tuple[str, str | None]] = []
        for dependent in sorted(self._dependents.pop(record.id, set())):
            unmet = self._unmet.get(dependent)
            if unmet is None:
                continue
            if record.state is TaskState.SUCCEEDED:
                unmet.discard(record.id)
                if not unmet:
                    del self._unmet[dependent]
                    out.append((dependent, None))
            else:
                self.forget(dependent)
                out.append((dependent, f"dependency {record.id} ended {record.state.name}"))
        return out

    def forget(self, task_id: str) -> None:
        """Drop a task's registered dependencies (it failed, or was never admitted)."""
        for dep in self._unmet.pop(task_id, set()):
            subs = self._dependents.get(dep)
            if subs is not None:
                subs.discard(task_id)

    async def restore(self, records: Sequence[TaskRecord], store: TaskStore) -> None:
        """Rebuild after a restart from every unfinished task."""
        active = {r.id: r for r in records}
        pending = [r for r in records if r.state is TaskState.PENDING]
        failed = await self.prepare(pending, active, store)
        for record in pending:
            if record.id in failed:
                record.state = TaskState.FAILED
                record.error_reason, record.error_message = "DEPENDENCY_FAILED", failed[record.id]
            elif not self.unmet(record.id):
                record.state = TaskState.QUEUED
