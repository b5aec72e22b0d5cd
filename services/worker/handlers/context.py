"""What a handler gets besides its task: the device, a warm model cache, the artifact dir."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.worker.model import HandlerError, Reason, TaskInput


class ModelCache:
    """Models kept warm in a slot process, keyed by (name, precision, device)."""

    def __init__(self) -> None:
        self._models: dict[tuple[str, str, str], Any] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[str, str, str], build: Callable[[], Any]) -> Any:
        if key in self._models:
            self.hits += 1
            return self._models[key]
        self.misses += 1
        model = build()
        self._models[key] = model
        return model

    def __contains__(self, key: object) -> bool:
        return key in self._models

    def __len__(self) -> int:
        return len(self._models)


@dataclass
class HandlerContext:
    device: str
    artifact_dir: Path
    models: ModelCache = field(default_factory=ModelCache)

    def artifact_path(self, task: TaskInput, suffix: str) -> Path:
        """A file for this task's output under the artifact dir (created on demand)."""
        self.artifact_dir.mkdir(parents=True, exist_ok=True)
        return self.artifact_dir / f"{task.task_id}-a{task.attempt}{suffix}"

    def datablock_path(self, block_id: str) -> Path:
        folder = self.artifact_dir / "datablocks"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{block_id}.pt"

    def resolve_input(self, ref: str) -> Path:
        """A datablock reference (file:// URI, path, or bare datablock id) as an existing file."""
        if ref.startswith("file://"):
            path = Path(urllib.parse.unquote(urllib.parse.urlparse(ref).path))
        elif "/" in ref:
            path = Path(ref)
        else:
            path = self.artifact_dir / "datablocks" / f"{ref}.pt"
        if not path.is_file():
            raise HandlerError(Reason.INVALID_INPUT, f"input datablock {ref!r} not found on this worker")
        return path


def cached_datablocks(artifact_dir: Path) -> tuple[str, ...]:
    """Ids of the datablocks stored on this worker (announced to the scheduler, S7)."""
    folder = artifact_dir / "datablocks"
    if not folder.is_dir():
        return ()
    return tuple(sorted(p.stem for p in folder.glob("*.pt")))
