"""Initial tables: resources, metric samples, profiles, worker profiles, tenant usage.

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
        "metric_samples",
        sa.Column("task_id", sa.String(length=256), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.String(length=256), nullable=False),
        sa.Column("device_model", sa.String(length=256), nullable=False),
        sa.Column("model_name", sa.String(length=256), nullable=False),
        sa.Column("model_version", sa.String(length=256), nullable=False),
        sa.Column("precision", sa.String(length=16), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=256), nullable=False),
        sa.Column("tenant", sa.String(length=256), nullable=False),
        sa.Column("queue_wait_s", sa.Double(), nullable=True),
        sa.Column("execution_time_s", sa.Double(), nullable=True),
        sa.Column("items_per_second", sa.Double(), nullable=False),
        sa.Column("gpu_utilization", sa.Double(), nullable=False),
        sa.Column("cpu_utilization", sa.Double(), nullable=False),
        sa.Column("memory_bytes", sa.BigInteger(), nullable=False),
        sa.Column("gpu_power_watts", sa.Double(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("task_id", "attempt"),
    )
    op.create_index("ix_metric_samples_tenant", "metric_samples", ["tenant"], unique=False)
    op.create_table(
        "profiles",
        sa.Column("key_id", sa.String(length=1100), nullable=False),
        sa.Column("device_model", sa.String(length=256), nullable=False),
        sa.Column("model_name", sa.String(length=256), nullable=False),
        sa.Column("model_version", sa.String(length=256), nullable=False),
        sa.Column("precision", sa.String(length=16), nullable=False),
        sa.Column("batch_bucket", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=256), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("mean", sa.Double(), nullable=False),
        sa.Column("m2", sa.Double(), nullable=False),
        sa.Column("ewma", sa.Double(), nullable=False),
        sa.Column("sketch", sa.LargeBinary(), nullable=False),
        sa.Column("items_per_second", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key_id"),
    )
    op.create_index("ix_profiles_device_model", "profiles", ["device_model"], unique=False)
    op.create_index("ix_profiles_model_name", "profiles", ["model_name"], unique=False)
    op.create_table(
        "resources",
        sa.Column("worker_id", sa.String(length=256), nullable=False),
        sa.Column("device_model", sa.String(length=256), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("worker_id"),
    )
    op.create_table(
        "tenant_usage",
        sa.Column("tenant", sa.String(length=256), nullable=False),
        sa.Column("usage", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant"),
    )
    op.create_table(
        "worker_profiles",
        sa.Column("key_id", sa.String(length=1100), nullable=False),
        sa.Column("worker_id", sa.String(length=256), nullable=False),
        sa.Column("device_model", sa.String(length=256), nullable=False),
        sa.Column("model_name", sa.String(length=256), nullable=False),
        sa.Column("model_version", sa.String(length=256), nullable=False),
        sa.Column("precision", sa.String(length=16), nullable=False),
        sa.Column("batch_bucket", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=256), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("mean", sa.Double(), nullable=False),
        sa.Column("m2", sa.Double(), nullable=False),
        sa.Column("ewma", sa.Double(), nullable=False),
        sa.Column("sketch", sa.LargeBinary(), nullable=False),
        sa.Column("items_per_second", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key_id", "worker_id"),
    )


def downgrade() -> None:
    op.drop_table("worker_profiles")
    op.drop_table("tenant_usage")
    op.drop_table("resources")
    op.drop_index("ix_profiles_model_name", table_name="profiles")
    op.drop_index("ix_profiles_device_model", table_name="profiles")
    op.drop_table("profiles")
    op.drop_index("ix_metric_samples_tenant", table_name="metric_samples")
    op.drop_table("metric_samples")
