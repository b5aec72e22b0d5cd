"""Alembic environment of the classifier (run through `common.db.upgrade`)."""

from __future__ import annotations

from common.migrate_env import run
from services.classifier.schema import metadata

run(metadata)
