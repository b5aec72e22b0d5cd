"""Tasks and jobs.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("user_name", sa.String(128), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("eligibility", sa.SmallInteger, nullable=False),
        sa.Column("priority_class", sa.Integer, nullable=False),
        sa.Column("classification_rule", sa.String(128), nullable=False, server_default=""),
        sa.Column("state", sa.SmallInteger, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False, server_default="0"),
        sa.Column("worker_id", sa.String(128), nullable=True),
        sa.Column("spec", sa.LargeBinary, nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=True),
        sa.Column("submitted_at", sa.Float, nullable=False),
        sa.Column("queued_at", sa.Float, nullable=True),
        sa.Column("assigned_at", sa.Float, nullable=True),
        sa.Column("started_at", sa.Float, nullable=True),
        sa.Column("finished_at", sa.Float, nullable=True),
        sa.Column("result", sa.LargeBinary, nullable=True),
        sa.Column("error_reason", sa.String(128), nullable=True),
        sa.Column("error_message", sa.Text, nullable=True),
    )
    op.create_index("ix_tasks_job_id", "tasks", ["job_id"])
    op.create_index("ix_tasks_tenant_job", "tasks", ["tenant", "job_id"])
    op.create_index("ix_tasks_state", "tasks", ["state"])
    op.create_index("uq_tasks_tenant_idempotency", "tasks", ["tenant", "idempotency_key"], unique=True)
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_jobs_tenant", "jobs", ["tenant"])


def downgrade() -> None:
    op.drop_table("jobs")
    op.drop_table("tasks")
