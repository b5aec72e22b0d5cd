"""Alembic environment of the profile store."""

from __future__ import annotations

from common.migrate_env import run
from services.profile_store.schema import metadata

run(metadata)
