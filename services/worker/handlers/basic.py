"""The no-op handler: does nothing, so benchmarks measure the scheduler, not the work."""

from __future__ import annotations

from services.worker.handlers.context import HandlerContext
from services.worker.model import HandlerResult, TaskInput


def noop(task: TaskInput, ctx: HandlerContext) -> HandlerResult:
    return HandlerResult(summary={"noop": True}, items=max(task.item_count, 1))
