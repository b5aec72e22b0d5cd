"""What travels on a slot's pipe, in the framing of `multiprocessing.connection` (a 4-byte
big-endian length, or -1 and an 8-byte one, then a pickle).

To the slot: a batch, a list of `TaskInput` (or None: stop). Back: one reply per task as a
plain tuple, which pickles and unpickles several times cheaper than the dataclasses it
stands for; `reply_from_wire` turns it back into a `SlotReply`.
"""

from __future__ import annotations

import pickle
import struct
from collections.abc import Callable
from typing import Any

from services.worker.model import HandlerResult, SlotReply, TaskFailure

_SHORT, _LONG = struct.Struct("!i"), struct.Struct("!Q")
_PROTOCOL = pickle.HIGHEST_PROTOCOL


def frame(message: object) -> bytes:
    """One frame: its length, then the pickle."""
    payload = pickle.dumps(message, protocol=_PROTOCOL)
    if len(payload) <= 0x7FFFFFFF:
        return _SHORT.pack(len(payload)) + payload
    return _SHORT.pack(-1) + _LONG.pack(len(payload)) + payload


def reply_to_wire(reply: SlotReply) -> tuple[Any, ...]:
    result, failure = reply.result, reply.failure
    return (
        reply.task_id,
        reply.execution_s,
        reply.peak_memory_bytes,
        None
        if result is None
        else (result.summary, result.inline, result.artifact_path, result.artifact_uri, result.items),
        None if failure is None else (failure.reason, failure.message),
    )


def reply_from_wire(message: object) -> SlotReply:
    """The reply a tuple from `reply_to_wire` stands for; ValueError if it is none."""
    if not isinstance(message, tuple) or len(message) != 5:
        raise ValueError(f"not a slot reply: {type(message).__name__}")
    task_id, execution_s, peak_memory_bytes, result, failure = message
    return SlotReply(
        task_id=task_id,
        execution_s=execution_s,
        peak_memory_bytes=peak_memory_bytes,
        result=None
        if result is None
        else HandlerResult(
            summary=result[0],
            inline=result[1],
            artifact_path=result[2],
            artifact_uri=result[3],
            items=result[4],
        ),
        failure=None if failure is None else TaskFailure(failure[0], failure[1]),
    )


class FrameReader:
    """Cuts a byte stream into frames and hands each unpickled message to `deliver`."""

    def __init__(self, deliver: Callable[[object], None]) -> None:
        self._deliver = deliver
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        """Deliver every whole frame received so far; raises what unpickling raises."""
        buffer = self._buffer
        buffer += data
        start, end = 0, len(buffer)
        try:
            while end - start >= 4:
                (size,) = _SHORT.unpack_from(buffer, start)
                head = 4
                if size == -1:
                    if end - start < 12:
                        break
                    (size,) = _LONG.unpack_from(buffer, start + 4)
                    head = 12
                if end - start < head + size:
                    break
                message = pickle.loads(buffer[start + head : start + head + size])
                start += head + size
                self._deliver(message)
        finally:
            del buffer[:start]
