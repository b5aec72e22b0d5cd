"""Task handlers by category: built-ins plus entry points in group "switchyard.handlers".

A handler is a plain function `handler(task: TaskInput, ctx: HandlerContext) -> HandlerResult`.
Handlers are named as "module:callable" and imported only when first used, so the parent
process can list categories without importing torch.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import entry_points

from services.worker.handlers.context import HandlerContext
from services.worker.model import HandlerError, HandlerResult, Reason, TaskInput

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "switchyard.handlers"
Handler = Callable[[TaskInput, HandlerContext], HandlerResult]

_SYNTHETIC = "services.worker.handlers.synthetic"
BUILTINS: dict[str, str] = {
    "noop": "services.worker.handlers.basic:noop",
    "inference": "services.worker.handlers.inference:inference",
    "preprocess": "services.worker.handlers.training:preprocess",
    "training_step": "services.worker.handlers.training:training_step",
    "generate_source_assets": f"{_SYNTHETIC}:generate_source_assets",
    "ingest_source_assets": f"{_SYNTHETIC}:ingest_source_assets",
    "identify_variation_parameters": f"{_SYNTHETIC}:identify_variation_parameters",
    "vary_variation_parameters": f"{_SYNTHETIC}:vary_variation_parameters",
    "create_synthetic_data": f"{_SYNTHETIC}:create_synthetic_data",
}


def import_target(target: str) -> Handler:
    module_name, _, attr = target.partition(":")
    obj: object = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{target} is not callable")
    return obj


def parse_specs(specs: Iterable[str]) -> dict[str, str]:
    """ "category=module:callable" strings (config `extra_handlers`) as a mapping."""
    out: dict[str, str] = {}
    for spec in specs:
        name, _, target = spec.partition("=")
        out[name.strip()] = target.strip()
    return out


class HandlerRegistry:
    """Category name → handler, loading each one lazily."""

    def __init__(self, targets: Mapping[str, str]) -> None:
        self._targets = dict(targets)
        self._loaded: dict[str, Handler] = {}

    @classmethod
    def default(cls, extra: Iterable[str] = ()) -> HandlerRegistry:
        """Built-ins, then entry points, then config `extra_handlers` (later ones win)."""
        targets = dict(BUILTINS)
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            targets[ep.name] = ep.value
        targets.update(parse_specs(extra))
        return cls(targets)

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._targets))

    def __contains__(self, name: object) -> bool:
        return name in self._targets

    def get(self, category: str) -> Handler:
        if category not in self._targets:
            raise HandlerError(
                Reason.UNKNOWN_CATEGORY, f"no handler for category {category!r} on this worker"
            )
        if category not in self._loaded:
            try:
                self._loaded[category] = import_target(self._targets[category])
            except (ImportError, AttributeError, TypeError) as exc:
                log.error("cannot load handler", extra={"category": category, "error": str(exc)})
                raise HandlerError(
                    Reason.UNKNOWN_CATEGORY, f"handler for {category!r} cannot be loaded: {exc}"
                ) from exc
        return self._loaded[category]
