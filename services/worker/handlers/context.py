"""What a handler gets besides its task: the device, a warm model cache, the artifact dir."""

from __future__ import annotations

import hashlib
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.worker.model import HandlerError, Reason, TaskInput

SEED_RANGE = (0, 2**62)
SPLIT_LABEL = "split_index"


def task_seed(task: TaskInput) -> int:
    """The seed of a task's random draws.

    From `parameters.seed`, mixed with the `split_index` label when the classifier split a
    request into several tasks (so its batches do not render the same images); a task
    without a seed draws from its id (stable across attempts, distinct between tasks). A
    seeded unsplit task uses its seed as given, so a request is reproducible.
    """
    value = task.parameters.get("seed")
    split = task.labels.get(SPLIT_LABEL, "")
    if value is None:
        return _mix(f"task:{task.task_id}:{split}")
    try:
        seed = int(value)
    except (TypeError, ValueError):
        raise HandlerError(Reason.INVALID_INPUT, "parameter 'seed' must be an integer") from None
    if not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        raise HandlerError(Reason.INVALID_INPUT, f"parameter 'seed'={seed} is not in [0, 2^62]")
    return _mix(f"seed:{seed}:split:{split}") if split else seed


def _mix(material: str) -> int:
    return int.from_bytes(hashlib.blake2b(material.encode(), digest_size=8).digest(), "big") >> 2


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
    # The worker's local datablock cache folder; None: `<artifact_dir>/datablocks`.
    datablock_dir: Path | None = None

    @property
    def blocks(self) -> Path:
        return self.datablock_dir if self.datablock_dir is not None else self.artifact_dir / "datablocks"

    def artifact_path(self, task: TaskInput, suffix: str) -> Path:
        """A file for this task's output under the artifact dir (created on demand)."""
        self.artifact_dir.mkdir(parents=True, exist_ok=True)
        return self.artifact_dir / f"{task.task_id}-a{task.attempt}{suffix}"

    def datablock_path(self, block_id: str) -> Path:
        """Where an output datablock is written (the worker publishes it after the task)."""
        self.blocks.mkdir(parents=True, exist_ok=True)
        return self.blocks / f"{block_id}.pt"

    def resolve_input(self, ref: str) -> Path:
        """A datablock reference (file:// URI, path, or bare datablock id) as an existing file."""
        if ref.startswith("file://"):
            path = Path(urllib.parse.unquote(urllib.parse.urlparse(ref).path))
        elif "/" in ref:
            path = Path(ref)
        else:
            path = self.blocks / f"{ref}.pt"
        if not path.is_file():
            raise HandlerError(Reason.INPUT_NOT_FOUND, f"input datablock {ref!r} not found on this worker")
        return path
