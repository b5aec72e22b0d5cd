"""Tables of the classifier: the tenant registry (tenants, users, hashed tokens).

No schema argument: on PostgreSQL `search_path` selects the `classifier` schema; on SQLite
the classifier has its own file.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    metadata = sa.MetaData(
        naming_convention={
            "pk": "pk_%(table_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ix": "ix_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
        }
    )


class TenantRow(Base):
    __tablename__ = "tenants"

    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    share: Mapped[float] = mapped_column(sa.Float, nullable=False, default=1.0, server_default="1")
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False)
    # Quotas the scheduler enforces (0 = unlimited); shipped to it by WatchTenants.
    max_queued_tasks: Mapped[int] = mapped_column(
        sa.BigInteger, nullable=False, default=0, server_default="0"
    )
    max_running_tasks: Mapped[int] = mapped_column(
        sa.BigInteger, nullable=False, default=0, server_default="0"
    )
    submit_rate_per_second: Mapped[float] = mapped_column(
        sa.Float, nullable=False, default=0.0, server_default="0"
    )
    submit_burst: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=0, server_default="0")


class UserRow(Base):
    __tablename__ = "users"

    tenant: Mapped[str] = mapped_column(
        sa.String(64), sa.ForeignKey("tenants.name", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False)


class TokenRow(Base):
    __tablename__ = "tokens"
    __table_args__ = (
        sa.ForeignKeyConstraint(["tenant", "user"], ["users.tenant", "users.name"], ondelete="CASCADE"),
        sa.Index("ix_tokens_tenant_user", "tenant", "user"),
    )

    # SHA-256 hex digest of the bearer token; the token itself is never stored.
    token_hash: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    user: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True), nullable=True)


metadata = Base.metadata
