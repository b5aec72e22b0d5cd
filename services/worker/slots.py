"""The parent's side of a slot: start, talk to, and kill/replace one slot process.

Once the slot is ready, the parent talks to it through an asyncio protocol on its end of
the pipe (a Unix socket pair), in the frames of `wire.py` that the child reads and
writes: a batch of tasks goes out as one frame, and each reply is handed to `on_reply`
from the event loop's read callback, with no thread hop, no future and no task per
message. The start-up handshake (one blocking read that may take seconds) runs
on a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import socket
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from prometheus_client import Counter

from services.worker.model import SlotReady, SlotReply, TaskInput
from services.worker.slot_process import slot_main
from services.worker.wire import FrameReader, frame, reply_from_wire

log = logging.getLogger(__name__)

SLOT_RESTARTS = Counter("switchyard_worker_slot_restarts_total", "Slot processes replaced", ["reason"])
START_TIMEOUT_S = 180.0


class SlotCrashed(Exception):
    """The slot process died (or closed its pipe) while the parent waited for it."""


class Slot:
    """One slot process. `send` hands it a batch of tasks; it answers one `SlotReply` per
    task, in order, through `on_reply`; `on_lost` says the process or its pipe went away
    (never after `abort`, `kill` or `stop` began)."""

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
        on_reply: Callable[[Slot, SlotReply], None] = lambda slot, reply: None,
        on_lost: Callable[[Slot, str], None] = lambda slot, why: None,
    ) -> None:
        self.index = index
        self._args = (device, artifact_dir, extra_handlers, threads, datablock_dir)
        self._executor = executor
        self._on_reply, self._on_lost = on_reply, on_lost
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self._transport: asyncio.Transport | None = None
        self.handlers: tuple[str, ...] = ()
        self.generation = 0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive() and self._transport is not None

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
            ready = await asyncio.wait_for(self._recv_blocking(parent), START_TIMEOUT_S)
        except (TimeoutError, SlotCrashed) as exc:
            await self.kill()
            raise SlotCrashed(f"slot {self.index} did not start: {exc!r}") from exc
        if not isinstance(ready, SlotReady):
            await self.kill()
            raise SlotCrashed(f"slot {self.index} sent {type(ready).__name__} instead of ready")
        self.handlers = ready.handlers
        # A second descriptor of the same socket for asyncio (which makes it non-blocking);
        # the Connection stays only to be closed.
        sock = socket.socket(fileno=os.dup(parent.fileno()))
        generation = self.generation
        transport, _ = await asyncio.get_running_loop().create_unix_connection(
            lambda: _Frames(self, generation), sock=sock
        )
        self._transport = transport
        log.info("slot ready", extra={"slot": self.index, "pid": ready.pid})

    def send(self, tasks: Sequence[TaskInput]) -> None:
        """Hand the slot a batch, run one after another; raise SlotCrashed if it is not running."""
        if self._transport is None or self._transport.is_closing():
            raise SlotCrashed(f"slot {self.index} is not running")
        self._transport.write(frame(list(tasks)))

    def _delivered(self, generation: int, reply: SlotReply) -> None:
        if generation == self.generation and self._transport is not None:
            self._on_reply(self, reply)

    def _closed(self, generation: int, why: str) -> None:
        transport = self._transport
        if generation == self.generation and transport is not None:
            self._transport = None
            transport.close()
            self._on_lost(self, why)

    async def _recv_blocking(self, conn: Connection) -> object:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, conn.recv)
        except (EOFError, OSError) as exc:
            raise SlotCrashed(f"slot {self.index} pipe closed: {exc!r}") from exc

    def abort(self) -> None:
        """Kill the process now (a stuck handler cannot be interrupted any other way) and
        stop listening to it: nothing it sent or does from here on reaches the callbacks."""
        self.generation += 1
        process, transport = self._process, self._transport
        self._transport = None
        if process is not None and process.is_alive():
            process.kill()
        if transport is not None:
            transport.close()

    async def kill(self) -> None:
        """`abort`, then wait for the process to be gone and close the pipe."""
        process, conn = self._process, self._conn
        self.abort()
        self._process, self._conn = None, None
        if process is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, process.join, 10)
        if conn is not None:
            conn.close()

    async def restart(self, reason: str) -> None:
        SLOT_RESTARTS.labels(reason).inc()
        log.info("replacing slot process", extra={"slot": self.index, "reason": reason})
        await self.kill()
        await self.start()

    async def stop(self, grace_s: float = 2.0) -> None:
        """Ask the process to exit, then kill it if it has not."""
        process, transport = self._process, self._transport
        if process is None:
            return
        self.generation += 1  # its pipe closing now is no crash
        if transport is not None:
            with contextlib.suppress(OSError, RuntimeError):
                transport.write(frame(None))
        await asyncio.get_running_loop().run_in_executor(self._executor, process.join, grace_s)
        await self.kill()


class _Frames(asyncio.Protocol):
    """Hands each reply read from a slot's pipe to the slot, as a `SlotReply`."""

    def __init__(self, slot: Slot, generation: int) -> None:
        self._slot, self._generation = slot, generation
        self._reader = FrameReader(self._deliver)

    def _deliver(self, message: object) -> None:
        self._slot._delivered(self._generation, reply_from_wire(message))

    def data_received(self, data: bytes) -> None:
        try:
            self._reader.feed(data)
        except Exception as exc:  # a garbled pipe is a lost slot, never a loop error
            self._slot._closed(self._generation, f"unreadable reply: {exc!r}")

    def connection_lost(self, exc: Exception | None) -> None:
        self._slot._closed(self._generation, f"pipe closed: {exc!r}" if exc else "pipe closed")
