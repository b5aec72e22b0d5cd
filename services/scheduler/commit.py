"""Group commit: many task transitions per transaction, one writer.

Callers hand records over and (when they must not answer before the write is durable)
await the returned future. The loop writes whatever has gathered since its last commit in
one transaction, so the commit rate, not the transition rate, bounds the database load.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from services.scheduler.model import JobRecord, TaskRecord
from services.scheduler.store import TaskStore

log = logging.getLogger(__name__)


class Committer:
    def __init__(
        self,
        store: TaskStore,
        *,
        batch_max: int,
        defer_s: float = 0.1,
        on_committed: Callable[[list[TaskRecord]], None],
    ) -> None:
        self.store = store
        self.batch_max = batch_max
        self.on_committed = on_committed
        self._inserts: list[tuple[list[TaskRecord], list[JobRecord], asyncio.Future[None]]] = []
        self._updates: dict[str, TaskRecord] = {}
        # Transitions a restart does not need (see `defer`), with the timer that bounds them.
        self._deferred: dict[str, TaskRecord] = {}
        self._deferred_timer: asyncio.TimerHandle | None = None
        self.defer_s = defer_s
        self._update_waiters: list[asyncio.Future[None]] = []
        # Resolved when the commit in flight ends (written or not).
        self._committing: asyncio.Future[None] | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.commits = 0

    @property
    def started(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="scheduler-commit")

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Write what is pending, let the commit in flight finish, then end the loop.

        Cancelling a commit half-way would leave a transaction (and, on SQLite, the write
        lock) open, so the loop is asked to end rather than cancelled, unless it hangs.
        """
        self._stopping = True
        self._deferred_due()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
        except TimeoutError:
            log.error("commit loop did not finish in time; transitions may be lost")
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def insert(self, records: Sequence[TaskRecord], jobs: Sequence[JobRecord]) -> None:
        """Durably insert new tasks; raises when the database refused them (nothing stored)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._inserts.append((list(records), list(jobs), future))
        self._wake.set()
        await future

    def update(self, records: Sequence[TaskRecord]) -> None:
        """Queue transitions for the next commit (`flush` waits until they are durable).

        No future per call: a batch of results makes many calls, and only the callers that
        must answer after the write (cancel, restore) wait, through `flush`."""
        for record in records:
            self._updates[record.id] = record
            self._deferred.pop(record.id, None)  # this write carries it
        self._wake.set()

    def defer(self, records: Sequence[TaskRecord]) -> None:
        """Queue transitions that recovery does not need, ASSIGNED and RUNNING: a restarted
        scheduler requeues those tasks whether or not the write landed (DESIGN §3). They
        are written after `defer_s` (or by `flush`), so that a placement does not cost its
        own commit nor make the task's result wait behind one, and a task that finishes
        within `defer_s` is written once, finished, instead of once per transition."""
        for record in records:
            if record.id not in self._updates:
                self._deferred[record.id] = record
        if self._deferred and self._deferred_timer is None:
            self._deferred_timer = asyncio.get_running_loop().call_later(self.defer_s, self._deferred_due)

    def _deferred_due(self) -> None:
        if self._deferred_timer is not None:
            self._deferred_timer.cancel()
            self._deferred_timer = None
        for record_id, record in self._deferred.items():
            self._updates.setdefault(record_id, record)
        self._deferred.clear()
        self._wake.set()

    async def flush(self, deferred: bool = True) -> None:
        """Wait until everything queued so far, and the commit in flight, is durable.

        `deferred=False` leaves the deferred ASSIGNED/RUNNING writes to their timer: a
        reader waiting for a terminal write to land needs those, not the others."""
        if deferred:
            self._deferred_due()
        while True:
            if self._inserts or self._updates:
                future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._update_waiters.append(future)
                self._wake.set()
                await future
                return
            if self._committing is None:
                return
            # Its records are no longer queued but not durable yet; should it fail, they are
            # queued again and the loop waits for the retry.
            await asyncio.shield(self._committing)

    def forget(self, record_ids: Sequence[str]) -> None:
        """Drop queued transitions of tasks that no longer exist (their insert failed)."""
        for record_id in record_ids:
            self._updates.pop(record_id, None)
            self._deferred.pop(record_id, None)

    async def _run(self) -> None:
        backoff = 0.05
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            while self._inserts or self._updates:
                ok = await self._commit_some()
                backoff = 0.05 if ok else min(backoff * 2, 2.0)
                if not ok:
                    await asyncio.sleep(backoff)

    async def _commit_some(self) -> bool:
        committing = self._committing = asyncio.get_running_loop().create_future()
        try:
            return await self._commit_next()
        finally:
            self._committing = None
            committing.set_result(None)

    async def _commit_next(self) -> bool:
        inserts, self._inserts = self._inserts[: self.batch_max], self._inserts[self.batch_max :]
        # A task placed while its insert waits must not have its transitions written first
        # (the UPDATE would match no row): those wait for the commit carrying the insert.
        later = {r.id for batch, _, _ in self._inserts for r in batch}
        updates = [r for r in self._updates.values() if r.id not in later]
        # The states this commit writes: a record that changes while the commit is in
        # flight is queued again, and is announced (and forgotten, if terminal) only once
        # the commit that carries its new state is durable.
        written = [record.state for record in updates]
        waiters, self._update_waiters = self._update_waiters, []
        if later:
            self._updates = {rid: r for rid, r in self._updates.items() if rid in later}
        else:
            self._updates.clear()
        new = [r for batch, _, _ in inserts for r in batch]
        jobs = [j for _, batch, _ in inserts for j in batch]
        try:
            await self.store.commit(new, jobs, updates)
        except Exception as exc:  # the database is down or refused: inserts fail, updates retry
            log.warning("commit failed; retrying transitions: %r", exc)
            for _, _, future in inserts:
                if not future.done():
                    future.set_exception(exc)
            for record in updates:
                self._updates.setdefault(record.id, record)
            self._update_waiters.extend(waiters)
            return False
        self.commits += 1
        for _, _, future in inserts:
            if not future.done():
                future.set_result(None)
        if later:  # what was held back goes with the next commit; so do those waiting for it
            self._update_waiters.extend(waiters)
        else:
            for future in waiters:
                if not future.done():
                    future.set_result(None)
        self.on_committed([r for r, state in zip(updates, written, strict=True) if r.state is state])
        return True
