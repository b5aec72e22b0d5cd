"""The parent's side of a slot: start, talk to, and kill/replace one slot process.

Once the slot is ready, the parent talks to it through asyncio on its end of the pipe (a
Unix socket pair), in the framing of `multiprocessing.connection` that the child reads and
writes: no thread hop per message, and the event loop never blocks on the pipe. The
start-up handshake (one blocking read that may take seconds) runs on a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import pickle
import socket
import struct
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
_SHORT, _LONG = struct.Struct("!i"), struct.Struct("!Q")


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
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
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
        # A second descriptor of the same socket for asyncio (which makes it non-blocking);
        # the Connection stays only to be closed.
        sock = socket.socket(fileno=os.dup(parent.fileno()))
        self._reader, self._writer = await asyncio.open_unix_connection(sock=sock)
        log.info("slot ready", extra={"slot": self.index, "pid": ready.pid})

    async def run(self, task: TaskInput) -> SlotReply:
        """Send one task; raise SlotCrashed when the process dies before answering."""
        reader, writer = self._reader, self._writer
        if reader is None or writer is None or not self.alive():
            raise SlotCrashed(f"slot {self.index} is not running")
        try:
            _send(writer, task)
            reply = await _receive(reader)
        except (EOFError, OSError, asyncio.IncompleteReadError, pickle.UnpicklingError) as exc:
            raise SlotCrashed(f"slot {self.index} pipe closed: {exc!r}") from exc
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
        process, conn, writer = self._process, self._conn, self._writer
        self._process, self._conn = None, None
        self._reader, self._writer = None, None
        if process is not None and process.is_alive():
            process.kill()
        if process is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, process.join, 10)
        if pending is not None:
            with contextlib.suppress(SlotCrashed, asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(pending, 10)
        if writer is not None:
            writer.close()
        if conn is not None:
            conn.close()

    async def restart(self, reason: str) -> None:
        SLOT_RESTARTS.labels(reason).inc()
        log.info("replacing slot process", extra={"slot": self.index, "reason": reason})
        await self.kill()
        await self.start()

    async def stop(self, grace_s: float = 2.0) -> None:
        """Ask the process to exit, then kill it if it has not."""
        process, writer = self._process, self._writer
        if process is None:
            return
        if writer is not None:
            with contextlib.suppress(OSError):
                _send(writer, None)
        await asyncio.get_running_loop().run_in_executor(self._executor, process.join, grace_s)
        await self.kill()


def _send(writer: asyncio.StreamWriter, message: object) -> None:
    """One `multiprocessing.connection` frame: a 4-byte big-endian length, then the pickle."""
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    header = (
        _SHORT.pack(len(payload))
        if len(payload) <= 0x7FFFFFFF
        else _SHORT.pack(-1) + _LONG.pack(len(payload))
    )
    writer.write(header + payload)


async def _receive(reader: asyncio.StreamReader) -> object:
    (size,) = _SHORT.unpack(await reader.readexactly(4))
    if size == -1:
        (size,) = _LONG.unpack(await reader.readexactly(8))
    return pickle.loads(await reader.readexactly(size))
