"""The built-in model zoo (defined in code, seeded, no downloads)."""

from __future__ import annotations

from services.worker.models.zoo import ZOO, ModelSpec, Tolerance, build_model, model_names

__all__ = ["ZOO", "ModelSpec", "Tolerance", "build_model", "model_names"]
