"""Where the scheduler's tasks and jobs live durably.

Constraints:
- `commit` is called only by the scheduler's single commit loop, many
  records per call (group commit); when they return, the rows are durable.
- its `updates` write every mutable column of each record as it is at call time.
- Reads may run concurrently with writes and see any committed state.
- (tenant, idempotency_key) is unique when the key is set.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from services.scheduler.model import JobRecord, TaskRecord, TaskState


class TaskStore(Protocol):
    async def commit(
        self, inserts: Sequence[TaskRecord], jobs: Sequence[JobRecord], updates: Sequence[TaskRecord]
    ) -> None:
        """Insert new tasks and jobs and write the mutable columns of `updates`, atomically.

        The rows are the records as they are when called, before the first await: the
        records are live and may change while the transaction runs."""

    async def get(self, task_ids: Sequence[str]) -> list[TaskRecord]: ...

    async def find_idempotent(self, tenant: str, keys: Sequence[str]) -> list[TaskRecord]: ...

    async def list_tasks(
        self,
        *,
        tenant: str,
        job_id: str | None,
        states: Sequence[TaskState],
        limit: int,
        after_id: str | None,
    ) -> list[TaskRecord]: ...

    async def get_job(self, tenant: str, job_id: str) -> JobRecord | None: ...

    async def job_state_counts(self, job_id: str) -> dict[TaskState, int]: ...

    async def load_unfinished(self) -> list[TaskRecord]: ...

    async def close(self) -> None: ...
