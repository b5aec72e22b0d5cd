"""The group commit's ordering guarantees, with a store whose commits the test holds open."""

from __future__ import annotations

import asyncio

from common.ids import new_id
from services.scheduler.commit import Committer
from services.scheduler.convert import record_from_proto
from services.scheduler.model import JobRecord, TaskRecord, TaskState
from switchyard.v1 import types_pb2


def record() -> TaskRecord:
    task = types_pb2.Task(
        id=new_id("task"),
        job_id="job-1",
        tenant="acme",
        category="noop",
        eligibility=types_pb2.ELIGIBILITY_CPU_OR_GPU,
        spec=types_pb2.TaskSpec(category="noop"),
    )
    return record_from_proto(task, 1_700_000_000.0)


class HeldStore:
    """Records what each commit wrote; a commit waits until the test releases it."""

    def __init__(self) -> None:
        self.commits: list[tuple[list[str], list[tuple[str, TaskState]]]] = []
        self.release = asyncio.Event()
        self.entered = asyncio.Event()

    async def commit(
        self, inserts: list[TaskRecord], jobs: list[JobRecord], updates: list[TaskRecord]
    ) -> None:
        self.entered.set()
        await self.release.wait()
        self.commits.append(([r.id for r in inserts], [(r.id, r.state) for r in updates]))


async def test_flush_waits_for_the_commit_in_flight() -> None:
    store = HeldStore()
    announced: list[str] = []
    committer = Committer(store, batch_max=10, on_committed=lambda rs: announced.extend(r.id for r in rs))  # type: ignore[arg-type]
    committer.start()
    done = record()
    done.state = TaskState.SUCCEEDED
    committer.update([done])
    await store.entered.wait()  # the terminal write is in flight, no longer queued
    flush = asyncio.ensure_future(committer.flush(deferred=False))
    await asyncio.sleep(0.05)
    assert not flush.done(), "flush returned before the write in flight was durable"
    store.release.set()
    await asyncio.wait_for(flush, 5)
    assert store.commits and (done.id, TaskState.SUCCEEDED) in store.commits[0][1]
    assert announced == [done.id]
    await committer.stop()


async def test_updates_of_a_task_never_go_before_its_insert() -> None:
    store = HeldStore()
    store.release.set()
    committer = Committer(store, batch_max=1, on_committed=lambda rs: None)  # type: ignore[arg-type]
    first, second = record(), record()
    inserts = [asyncio.ensure_future(committer.insert([r], [])) for r in (first, second)]
    await asyncio.sleep(0)  # both inserts queued; one commit takes one insert
    second.state = TaskState.SUCCEEDED  # placed, run and finished while its insert waits
    committer.update([second])
    committer.start()
    await asyncio.wait_for(asyncio.gather(*inserts), 5)
    await asyncio.wait_for(committer.flush(), 5)
    inserted_in = {rid: i for i, (ids, _) in enumerate(store.commits) for rid in ids}
    updated_in = [i for i, (_, ups) in enumerate(store.commits) for rid, _ in ups if rid == second.id]
    assert updated_in and min(updated_in) >= inserted_in[second.id]
    await committer.stop()


async def test_forgotten_transitions_are_not_written() -> None:
    store = HeldStore()
    store.release.set()
    committer = Committer(store, batch_max=10, on_committed=lambda rs: None)  # type: ignore[arg-type]
    gone, kept = record(), record()
    committer.update([gone, kept])
    committer.defer([record()])
    committer.forget([gone.id])
    committer.start()
    await asyncio.wait_for(committer.flush(), 5)
    written = {rid for _, ups in store.commits for rid, _ in ups}
    assert kept.id in written and gone.id not in written
    await committer.stop()


async def test_a_task_that_finishes_within_the_deferral_is_written_once_finished() -> None:
    store = HeldStore()
    store.release.set()
    committer = Committer(store, batch_max=10, defer_s=30.0, on_committed=lambda rs: None)  # type: ignore[arg-type]
    committer.start()
    quick, slow, other = record(), record(), record()
    quick.state = slow.state = TaskState.ASSIGNED
    committer.defer([quick, slow])
    committer.update([other])  # a commit goes by: the deferred writes wait for their timer
    await asyncio.wait_for(committer.flush(deferred=False), 5)
    assert {rid for _, ups in store.commits for rid, _ in ups} == {other.id}
    quick.state = TaskState.SUCCEEDED
    committer.update([quick])
    await asyncio.wait_for(committer.flush(deferred=False), 5)
    await asyncio.wait_for(committer.flush(), 5)  # the deferral's end: `slow` goes now
    writes = [(rid, state) for _, ups in store.commits for rid, state in ups]
    assert [w for w in writes if w[0] == quick.id] == [(quick.id, TaskState.SUCCEEDED)]
    assert [w for w in writes if w[0] == slow.id] == [(slow.id, TaskState.ASSIGNED)]
    await committer.stop()
