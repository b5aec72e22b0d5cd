"""The parent's side of a slot: start, talk to, and kill/replace one slot process.

Blocking pipe reads and writes run on a thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from prometheus_client import Counter

from services.worker.model import SlotReady, SlotReply, TaskInput
from services.worker.slot_process import slot_main

log = logging.getLogger(__name__)

SLOT_RESTARTS = Counter("switchyard_worker_slot_restarts_total", "Slot processes replaced", ["reason"])
START_TIMEOUT_S = 180.0


class SlotCrashed(Exception):
    """The slot process died (or closed its pipe) while the parent waited for it."""


class Slot:
    """One slot process; `run` sends a task and waits for its reply."""

    def __init__(
        self,
        index: int,
        *,
        device: str,
        artifact_dir: str,
        extra_handlers: tuple[str, ...],
        threads: int,
        executor: ThreadPoolExecutor,
        datablock_dir: str = "",
    ) -> None:
        self.index = index
        self._args = (device, artifact_dir, extra_handlers, threads, datablock_dir)
        self._executor = executor
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self.handlers: tuple[str, ...] = ()
        self.generation = 0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    async def start(self) -> None:
        """Spawn the process and wait until it has imported torch and its handlers."""
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe(duplex=True)
        process = ctx.Process(
            target=slot_main, args=(child, *self._args), name=f"switchyard-slot-{self.index}", daemon=True
        )
        process.start()
        child.close()
        self._process, self._conn = process, parent
        self.generation += 1
        try:
            ready = await asyncio.wait_for(self._call(parent.recv), START_TIMEOUT_S)
        except (TimeoutError, SlotCrashed) as exc:
            await self.kill()
            raise SlotCrashed(f"slot {self.index} did not start: {exc!r}") from exc
        if not isinstance(ready, SlotReady):
            raise SlotCrashed(f"slot {self.index} sent {type(ready).__name__} instead of ready")
        self.handlers = ready.handlers
        log.info("slot ready", extra={"slot": self.index, "pid": ready.pid})

    async def run(self, task: TaskInput) -> SlotReply:
        """Send one task; raise SlotCrashed when the process dies before answering."""
        conn = self._conn
        if conn is None or not self.alive():
            raise SlotCrashed(f"slot {self.index} is not running")
        await self._call(conn.send, task)
        reply = await self._call(conn.recv)
        if not isinstance(reply, SlotReply) or reply.task_id != task.task_id:
            raise SlotCrashed(f"slot {self.index} answered out of turn")
        return reply

    async def _call(self, fn: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, *args)
        except (EOFError, OSError, BrokenPipeError) as exc:
            raise SlotCrashed(f"slot {self.index} pipe closed: {exc!r}") from exc

    async def kill(self, pending: asyncio.Future[Any] | None = None) -> None:
        """Kill the process at once (a stuck handler cannot be interrupted any other way).

        `pending` is a `run` still waiting on the pipe: it is let finish (the dead process
        makes it fail) before the pipe is closed, so no thread reads a reused descriptor.
        """
        process, conn = self._process, self._conn
        self._process, self._conn = None, None
        if process is not None and process.is_alive():
            process.kill()
        if process is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, process.join, 10)
        if pending is not None:
            with contextlib.suppress(SlotCrashed, asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(pending, 10)
        if conn is not None:
            conn.close()

    async def restart(self, reason: str) -> None:
        SLOT_RESTARTS.labels(reason).inc()
        log.info("replacing slot process", extra={"slot": self.index, "reason": reason})
        await self.kill()
        await self.start()

    async def stop(self, grace_s: float = 2.0) -> None:
        """Ask the process to exit, then kill it if it has not."""
        process, conn = self._process, self._conn
        if process is None or conn is None:
            return
        with contextlib.suppress(OSError):
            conn.send(None)
        await asyncio.get_running_loop().run_in_executor(self._executor, process.join, grace_s)
        await self.kill()
