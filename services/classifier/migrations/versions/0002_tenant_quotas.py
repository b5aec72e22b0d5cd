"""Tenant quotas: queued and running task limits and a submit rate (0 = unlimited).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

QUOTA_COLUMNS = (
    ("max_queued_tasks", sa.BigInteger()),
    ("max_running_tasks", sa.BigInteger()),
    ("submit_rate_per_second", sa.Float()),
    ("submit_burst", sa.BigInteger()),
)


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        for name, type_ in QUOTA_COLUMNS:
            batch.add_column(sa.Column(name, type_, server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        for name, _ in reversed(QUOTA_COLUMNS):
            batch.drop_column(name)
