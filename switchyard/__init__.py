"""Switchyard: a multi-tenant gRPC scheduler for ML and synthetic-data work on CPU/GPU fleets.

This package is the client side: the async SDK (`Client`), task spec builders, the one
client error type (`SwitchyardError`), the local mesh launcher (`Mesh`) and the
`switchyard` command line. Generated protobuf and gRPC modules live in `switchyard.v1`.
"""

from __future__ import annotations

from switchyard.client import DEFAULT_ADDRESS, Client, SubmitResult
from switchyard.errors import FieldViolation, QuotaViolation, SwitchyardError
from switchyard.mesh import Mesh, MeshError, MeshOptions
from switchyard.specs import (
    TERMINAL_STATES,
    create_synthetic_data,
    generate_source_assets,
    identify_variation_parameters,
    inference,
    ingest_source_assets,
    noop,
    preprocess,
    split,
    task,
    training_step,
    vary_variation_parameters,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_ADDRESS",
    "TERMINAL_STATES",
    "Client",
    "FieldViolation",
    "Mesh",
    "MeshError",
    "MeshOptions",
    "QuotaViolation",
    "SubmitResult",
    "SwitchyardError",
    "__version__",
    "create_synthetic_data",
    "generate_source_assets",
    "identify_variation_parameters",
    "inference",
    "ingest_source_assets",
    "noop",
    "preprocess",
    "split",
    "task",
    "training_step",
    "vary_variation_parameters",
]
