"""Task handlers by category (see `registry.py`) and what they are given (`context.py`)."""

from __future__ import annotations

from services.worker.handlers.context import HandlerContext, ModelCache
from services.worker.handlers.registry import BUILTINS, ENTRY_POINT_GROUP, Handler, HandlerRegistry

__all__ = ["BUILTINS", "ENTRY_POINT_GROUP", "Handler", "HandlerContext", "HandlerRegistry", "ModelCache"]
