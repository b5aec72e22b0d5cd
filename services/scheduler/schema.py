"""The scheduler's tables (it is the only writer of task state)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("job_id", sa.String(64), nullable=False, index=True),
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
    sa.Index("ix_tasks_tenant_job", "tenant", "job_id"),
    sa.Index("ix_tasks_state", "state"),
    sa.Index("uq_tasks_tenant_idempotency", "tenant", "idempotency_key", unique=True),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant", sa.String(128), nullable=False, index=True),
    sa.Column("created_at", sa.Float, nullable=False),
)
