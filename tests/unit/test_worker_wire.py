"""A slot's pipe: replies as plain tuples and back, frames cut from any split of the stream."""

from __future__ import annotations

import pickle

import pytest

from services.worker.model import HandlerResult, SlotReply, TaskFailure
from services.worker.wire import FrameReader, frame, reply_from_wire, reply_to_wire

REPLIES = [
    SlotReply(task_id="t1"),
    SlotReply(
        task_id="t2",
        result=HandlerResult(
            summary={"a": [1, 2]}, inline=b"xy", artifact_path="/p", artifact_uri="file:///p", items=3
        ),
        execution_s=0.25,
        peak_memory_bytes=1024,
    ),
    SlotReply(task_id="t3", failure=TaskFailure("HANDLER_ERROR", "boom"), execution_s=1.5),
]


@pytest.mark.parametrize("reply", REPLIES, ids=lambda r: r.task_id)
def test_a_reply_survives_the_pipe(reply: SlotReply) -> None:
    wired = pickle.loads(pickle.dumps(reply_to_wire(reply)))
    assert isinstance(wired, tuple)
    assert reply_from_wire(wired) == reply


@pytest.mark.parametrize("message", [None, "t1", ("t1", 0.0), SlotReply(task_id="t1")])
def test_anything_else_is_no_reply(message: object) -> None:
    with pytest.raises(ValueError, match="not a slot reply"):
        reply_from_wire(message)


def test_frames_are_delivered_whole_and_in_order_however_the_stream_is_cut() -> None:
    messages: list[object] = [[1, 2, 3], "x" * 70_000, None, {"k": b"v"}]
    stream = b"".join(frame(m) for m in messages)
    for chunk in (1, 3, 4, 5, 4096, len(stream)):
        got: list[object] = []
        reader = FrameReader(got.append)
        for offset in range(0, len(stream), chunk):
            reader.feed(stream[offset : offset + chunk])
        assert got == messages


def test_a_garbled_frame_raises() -> None:
    reader = FrameReader(lambda message: None)
    with pytest.raises(pickle.UnpicklingError):
        reader.feed(b"\x00\x00\x00\x03abc")
