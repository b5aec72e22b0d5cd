"""Tables of the profile store (no schema argument: PostgreSQL selects it by search_path,
SQLite has one file per service)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

KEY_LEN = 1100
NAME_LEN = 256


class Base(DeclarativeBase):
    pass


class ResourceRow(Base):
    """A worker that reported metrics, with its device model (the seeds' "resource")."""

    __tablename__ = "resources"

    worker_id: Mapped[str] = mapped_column(sa.String(NAME_LEN), primary_key=True)
    device_model: Mapped[str] = mapped_column(sa.String(NAME_LEN))
    kind: Mapped[str] = mapped_column(sa.String(16))
    last_seen: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


class MetricSampleRow(Base):
    """One task attempt's result metrics; the primary key makes ingest idempotent."""

    __tablename__ = "metric_samples"

    task_id: Mapped[str] = mapped_column(sa.String(NAME_LEN), primary_key=True)
    attempt: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    worker_id: Mapped[str] = mapped_column(sa.String(NAME_LEN))
    device_model: Mapped[str] = mapped_column(sa.String(NAME_LEN))
    model_name: Mapped[str] = mapped_column(sa.String(NAME_LEN))
    model_version: Mapped[str] = mapped_column(sa.String(NAME_LEN))
    precision: Mapped[str] = mapped_column(sa.String(16))
    batch_size: Mapped[int] = mapped_column(sa.Integer)
    category: Mapped[str] = mapped_column(sa.String(NAME_LEN))
    tenant: Mapped[str] = mapped_column(sa.String(NAME_LEN), index=True)
    queue_wait_s: Mapped[float | None] = mapped_column(sa.Double)
    execution_time_s: Mapped[float | None] = mapped_column(sa.Double)
    items_per_second: Mapped[float] = mapped_column(sa.Double)
    gpu_utilization: Mapped[float] = mapped_column(sa.Double)
    cpu_utilization: Mapped[float] = mapped_column(sa.Double)
    memory_bytes: Mapped[int] = mapped_column(sa.BigInteger)
    gpu_power_watts: Mapped[float] = mapped_column(sa.Double)
    outcome: Mapped[str] = mapped_column(sa.String(16))
    finished_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


class _ProfileColumns:
    device_model: Mapped[str] = mapped_column(sa.String(NAME_LEN))
    model_name: Mapped[str] = mapped_column(sa.String(NAME_LEN))
    model_version: Mapped[str] = mapped_column(sa.String(NAME_LEN))
    precision: Mapped[str] = mapped_column(sa.String(16))
    batch_bucket: Mapped[int] = mapped_column(sa.Integer)
    category: Mapped[str] = mapped_column(sa.String(NAME_LEN))
    count: Mapped[int] = mapped_column(sa.BigInteger)
    mean: Mapped[float] = mapped_column(sa.Double)
    m2: Mapped[float] = mapped_column(sa.Double)
    ewma: Mapped[float] = mapped_column(sa.Double)
    sketch: Mapped[bytes] = mapped_column(sa.LargeBinary)
    items_per_second: Mapped[float] = mapped_column(sa.Double)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


class ProfileRow(_ProfileColumns, Base):
    """Figures per (device model, model, version, precision, batch bucket, category);
    `key_id` is `ProfileKey.id`, which also orders pages."""

    __tablename__ = "profiles"
    __table_args__ = (
        sa.Index("ix_profiles_model_name", "model_name"),
        sa.Index("ix_profiles_device_model", "device_model"),
    )

    key_id: Mapped[str] = mapped_column(sa.String(KEY_LEN), primary_key=True)


class WorkerProfileRow(_ProfileColumns, Base):
    """The same figures per worker, beside the device-model profile."""

    __tablename__ = "worker_profiles"

    key_id: Mapped[str] = mapped_column(sa.String(KEY_LEN), primary_key=True)
    worker_id: Mapped[str] = mapped_column(sa.String(NAME_LEN), primary_key=True)


class TenantUsageRow(Base):
    """Decayed usage in reference-device-seconds, as of `updated_at`."""

    __tablename__ = "tenant_usage"

    tenant: Mapped[str] = mapped_column(sa.String(NAME_LEN), primary_key=True)
    usage: Mapped[float] = mapped_column(sa.Double)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


metadata = Base.metadata
