"""The body of a slot: a child process that imports torch once, keeps models warm and runs
one task at a time for its parent worker, over a pipe.

Messages (`wire.py`): the child first sends `SlotReady`; then it receives batches (lists
of `TaskInput`), runs each batch's tasks one after another and answers one reply per
task as soon as it ends, so the parent always knows which task is running (to time it out
or cancel it by killing this process); `None` (or the parent's end closing) stops it.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import resource
import signal
import time
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING

from services.worker.model import (
    INLINE_LIMIT_BYTES,
    HandlerError,
    HandlerResult,
    Reason,
    SlotReady,
    SlotReply,
    TaskFailure,
    TaskInput,
)
from services.worker.wire import reply_to_wire

if TYPE_CHECKING:  # imported by the slot process itself, after torch (see slot_main)
    from services.worker.handlers import HandlerContext, HandlerRegistry

MESSAGE_LIMIT = 2048


def slot_main(
    conn: Connection,
    device: str,
    artifact_dir: str,
    extra_handlers: tuple[str, ...],
    threads: int,
    datablock_dir: str = "",
) -> None:
    """Entry point of a slot process (multiprocessing "spawn")."""
    # Ctrl-C in a terminal reaches the whole process group: the parent stops the slots.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch

    from services.worker.handlers import HandlerContext, HandlerRegistry

    torch.set_num_threads(threads)
    if device.startswith("cuda"):
        torch.cuda.set_device(device)
    registry = HandlerRegistry.default(extra_handlers)
    blocks = Path(datablock_dir) if datablock_dir else None
    ctx = HandlerContext(device=device, artifact_dir=Path(artifact_dir), datablock_dir=blocks)
    conn.send(SlotReady(pid=os.getpid(), handlers=registry.names()))
    while True:
        try:
            batch = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        if batch is None:
            return
        for task in batch:
            _answer(conn, task, run_task(registry, ctx, task))


def _answer(conn: Connection, task: TaskInput, reply: SlotReply) -> None:
    # Plain pickle and send_bytes: `Connection.send`'s ForkingPickler costs more per reply.
    try:
        payload = pickle.dumps(reply_to_wire(reply), protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        failure = TaskFailure(Reason.HANDLER_ERROR, f"handler result cannot be sent: {exc}")
        fallback = SlotReply(task_id=task.task_id, failure=failure, execution_s=reply.execution_s)
        payload = pickle.dumps(reply_to_wire(fallback), protocol=pickle.HIGHEST_PROTOCOL)
    conn.send_bytes(payload)


def run_task(registry: HandlerRegistry, ctx: HandlerContext, task: TaskInput) -> SlotReply:
    """Run one task through its handler; every exception becomes a failure, never a crash."""
    started = time.perf_counter()
    try:
        result = _bounded(registry.get(task.category)(task, ctx), task, ctx)
        failure = None
    except HandlerError as exc:
        result, failure = None, TaskFailure(exc.reason, exc.message[:MESSAGE_LIMIT])
    except Exception as exc:
        traceback.print_exc()
        result, failure = (
            None,
            TaskFailure(Reason.HANDLER_ERROR, (str(exc) or type(exc).__name__)[:MESSAGE_LIMIT]),
        )
    return SlotReply(
        task_id=task.task_id,
        result=result,
        failure=failure,
        execution_s=time.perf_counter() - started,
        peak_memory_bytes=_peak_memory(ctx.device),
    )


def _bounded(result: object, task: TaskInput, ctx: HandlerContext) -> HandlerResult:
    """Check the handler's result; inline bytes over 64 KiB move to an artifact file."""
    if not isinstance(result, HandlerResult):
        raise TypeError(f"handler returned {type(result).__name__}, not HandlerResult")
    if len(result.inline) <= INLINE_LIMIT_BYTES:
        return result
    path = ctx.artifact_path(task, "-result.bin")
    path.write_bytes(result.inline)
    return dataclasses.replace(result, inline=b"", artifact_path=result.artifact_path or str(path))


def _peak_memory(device: str) -> int:
    if device.startswith("cuda"):
        import torch

        peak = int(torch.cuda.max_memory_allocated(device))
        torch.cuda.reset_peak_memory_stats(device)
        return peak
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
