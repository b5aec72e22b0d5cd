"""Kill the scheduler with SIGKILL in the middle of a run: nothing acknowledged is lost and
every task ends with exactly one terminal record (reruns after the crash are allowed)."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest

from switchyard import Client, SwitchyardError, specs
from switchyard.v1 import types_pb2

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.parametrize("mesh_database", ["postgres"], indirect=True, scope="module"),
]

TERMINAL = {
    types_pb2.TASK_STATE_SUCCEEDED,
    types_pb2.TASK_STATE_FAILED,
    types_pb2.TASK_STATE_CANCELLED,
    types_pb2.TASK_STATE_EXPIRED,
}


async def states(client: Client, ids: list[str]) -> dict[str, int]:
    tasks = await client.get_tasks(ids)
    return {t.id: t.state for t in tasks}


async def test_scheduler_sigkill_mid_run_loses_nothing(mesh, mesh_database):
    async with Client(mesh.classifier_address, mesh.tokens["acme"], timeout=10) as client:
        submitted = await client.submit([specs.preprocess(batch_size=8) for _ in range(120)])
        ids = submitted.task_ids
        assert len(ids) == 120
        deadline = time.monotonic() + 120
        while sum(s == types_pb2.TASK_STATE_SUCCEEDED for s in (await states(client, ids)).values()) < 10:
            assert time.monotonic() < deadline, "no progress before the crash"
            await asyncio.sleep(0.1)
        before = await states(client, ids)
        unfinished = [i for i, s in before.items() if s not in TERMINAL]
        assert unfinished, "the crash must hit a run in progress"
        await mesh.restart("scheduler", crash=True)
        final: dict[str, int] = {}
        while time.monotonic() < deadline + 120:
            try:
                final = await states(client, ids)
            except SwitchyardError:  # the front door answers UNAVAILABLE while the scheduler is back
                await asyncio.sleep(0.5)
                continue
            if all(s in TERMINAL for s in final.values()):
                break
            await asyncio.sleep(0.5)
        assert set(final) == set(ids)
        assert all(s == types_pb2.TASK_STATE_SUCCEEDED for s in final.values()), final
    # exactly one record per task, and it is terminal
    with psycopg.connect(mesh_database) as conn:
        rows = conn.execute(
            "SELECT id, state, attempt FROM scheduler.tasks WHERE job_id = %s", (submitted.job_id,)
        ).fetchall()
    assert len(rows) == 120 and {r[0] for r in rows} == set(ids)
    assert {r[1] for r in rows} == {types_pb2.TASK_STATE_SUCCEEDED}
    assert max(r[2] for r in rows) >= 1
