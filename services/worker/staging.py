"""Around each task: stage its input datablocks into the cache before it runs, adopt and
publish its output datablocks after it succeeds (file I/O on a thread, never the loop)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path

from services.worker.datablocks import DatablockCache, DatablockNotFound, valid_block_id
from services.worker.model import HandlerResult, TaskInput

log = logging.getLogger(__name__)


class Staging:
    def __init__(self, cache: DatablockCache) -> None:
        self.cache = cache

    async def prepare(self, task: TaskInput) -> TaskInput:
        """The task with its inputs as local cache paths (pinned until `release`).

        Raises DatablockNotFound naming the first input that cannot be had.
        """
        if not task.input_blocks:
            return task
        paths = await asyncio.to_thread(self._stage, task)
        return dataclasses.replace(task, inputs=tuple(str(p) for p in paths))

    def _stage(self, task: TaskInput) -> list[Path]:
        paths: list[Path] = []
        pinned: list[str] = []
        try:
            for ref in task.input_blocks:
                paths.append(self.cache.get(ref, pin=True))
                pinned.append(ref.name)
        except (DatablockNotFound, OSError) as exc:
            self.cache.unpin(pinned)
            if isinstance(exc, DatablockNotFound):
                raise
            raise DatablockNotFound(ref.uri or ref.id, str(exc)) from exc
        return paths

    def release(self, task: TaskInput) -> None:
        """Unpin what `prepare` staged (call once per prepared task)."""
        if task.input_blocks:
            self.cache.unpin(ref.name for ref in task.input_blocks)

    def has_outputs(self, task: TaskInput, result: HandlerResult) -> bool:
        """Whether `publish` has anything to do for this result."""
        return bool(task.outputs) or bool(_summary_block(result))

    async def publish(self, task: TaskInput, result: HandlerResult) -> HandlerResult:
        """Adopt the outputs the slot wrote into the cache and publish them to the store.

        The result's summary gets `outputs` {block id: URI}; an artifact that is one of
        those blocks is returned by its published URI.
        """
        names = list(dict.fromkeys([*task.outputs, *_summary_block(result)]))
        if not names:
            return result
        uris = await asyncio.to_thread(self._publish, task, names)
        if not uris:
            return result
        out = dataclasses.replace(result, summary={**result.summary, "outputs": uris})
        if result.artifact_path:
            artifact = Path(result.artifact_path).resolve()
            for name, uri in uris.items():
                if self.cache.path(name).resolve() == artifact:
                    out = dataclasses.replace(out, artifact_path="", artifact_uri=uri)
        return out

    def _publish(self, task: TaskInput, names: list[str]) -> dict[str, str]:
        uris: dict[str, str] = {}
        for name in names:
            if not valid_block_id(name) or not self.cache.path(name).is_file():
                if name in task.outputs:
                    log.warning(
                        "declared output was not written", extra={"task_id": task.task_id, "datablock": name}
                    )
                continue
            path = self.cache.adopt(name)
            uris[name] = self.cache.store.publish(name, path)
        return uris


def _summary_block(result: HandlerResult) -> list[str]:
    block = result.summary.get("datablock")
    return [block] if isinstance(block, str) and block else []
