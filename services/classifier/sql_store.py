"""The tenant registry on SQLAlchemy (PostgreSQL or SQLite); see `store.py` for the contract."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from common.auth import Principal, hash_token, new_token
from common.errors import AlreadyExists, NotFound, Unavailable, Violations
from common.timeutil import utcnow
from services.classifier.model import UNLIMITED, IssuedToken, Tenant, TenantQuotas, User
from services.classifier.schema import TenantRow, TokenRow, UserRow
from services.classifier.store import MAX_QUOTA, NAME_RE


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; every stored value is UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _check_names(share: float | None = None, **names: str) -> None:
    v = Violations()
    for field, value in names.items():
        if not NAME_RE.match(value):
            v.add(field, "must be 1-64 characters of letters, digits, '_', '.' or '-'")
    if share is not None and (not math.isfinite(share) or share <= 0):
        v.add("share", f"must be a finite number > 0 (got {share})")
    v.raise_if_any()


def _check_quotas(quotas: TenantQuotas) -> None:
    v = Violations()
    for field in ("max_queued_tasks", "max_running_tasks", "submit_burst"):
        value = getattr(quotas, field)
        if not 0 <= value <= MAX_QUOTA:
            v.add(f"quotas.{field}", f"must be an integer from 0 (unlimited) to {MAX_QUOTA} (got {value})")
    rate = quotas.submit_rate_per_second
    if not math.isfinite(rate) or not 0 <= rate <= MAX_QUOTA:
        v.add("quotas.submit_rate_per_second", f"must be a finite number ≥ 0, 0 = unlimited (got {rate})")
    v.raise_if_any()


def _tenant(row: TenantRow) -> Tenant:
    quotas = TenantQuotas(
        max_queued_tasks=row.max_queued_tasks,
        max_running_tasks=row.max_running_tasks,
        submit_rate_per_second=row.submit_rate_per_second,
        submit_burst=row.submit_burst,
    )
    return Tenant(row.name, row.share, _aware(row.created_at), quotas)


def _quota_values(quotas: TenantQuotas) -> dict[str, int | float]:
    return {
        "max_queued_tasks": quotas.max_queued_tasks,
        "max_running_tasks": quotas.max_running_tasks,
        "submit_rate_per_second": quotas.submit_rate_per_second,
        "submit_burst": quotas.submit_burst,
    }


class SqlTenantStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def create_tenant(self, name: str, share: float = 1.0, quotas: TenantQuotas = UNLIMITED) -> Tenant:
        _check_names(share, tenant=name)
        _check_quotas(quotas)
        row = TenantRow(name=name, share=share, created_at=utcnow(), **_quota_values(quotas))
        try:
            async with self.sessions.begin() as session:
                session.add(row)
        except IntegrityError:
            raise AlreadyExists(f"tenant {name!r} already exists", reason="TENANT_EXISTS") from None
        return _tenant(row)

    async def update_tenant(
        self, name: str, *, share: float | None = None, quotas: TenantQuotas | None = None
    ) -> Tenant:
        if share is not None:
            _check_names(share, tenant=name)
        if quotas is not None:
            _check_quotas(quotas)
        async with self.sessions.begin() as session:
            row = await session.get(TenantRow, name)
            if row is None:
                raise NotFound("tenant", name)
            if share is not None:
                row.share = share
            for field, value in _quota_values(quotas or _tenant(row).quotas).items():
                setattr(row, field, value)
        return _tenant(row)

    async def get_tenant(self, name: str) -> Tenant | None:
        async with self.sessions() as session:
            row = await session.get(TenantRow, name)
        return _tenant(row) if row else None

    async def list_tenants(self) -> list[Tenant]:
        try:
            async with self.sessions() as session:
                rows = (await session.scalars(sa.select(TenantRow).order_by(TenantRow.name))).all()
        except (OperationalError, OSError):
            raise Unavailable("the tenant registry is unavailable", reason="REGISTRY_UNAVAILABLE") from None
        return [_tenant(r) for r in rows]

    async def create_user(self, tenant: str, name: str) -> User:
        _check_names(tenant=tenant, user=name)
        async with self.sessions.begin() as session:
            if await session.get(TenantRow, tenant) is None:
                raise NotFound("tenant", tenant)
            if await session.get(UserRow, (tenant, name)) is not None:
                raise AlreadyExists(
                    f"user {name!r} of tenant {tenant!r} already exists", reason="USER_EXISTS"
                )
            session.add(UserRow(tenant=tenant, name=name, created_at=utcnow()))
        return User(tenant, name)

    async def get_user(self, tenant: str, name: str) -> User | None:
        async with self.sessions() as session:
            row = await session.get(UserRow, (tenant, name))
        return User(row.tenant, row.name) if row else None

    async def issue_token(self, tenant: str, user: str) -> IssuedToken:
        token, now = new_token(), utcnow()
        async with self.sessions.begin() as session:
            if await session.get(UserRow, (tenant, user)) is None:
                raise NotFound("user", f"{tenant}/{user}")
            session.add(TokenRow(token_hash=hash_token(token), tenant=tenant, user=user, created_at=now))
        return IssuedToken(token=token, tenant=tenant, user=user, created_at=now)

    async def resolve_token(self, token: str) -> Principal | None:
        query = sa.select(TokenRow.tenant, TokenRow.user).where(
            TokenRow.token_hash == hash_token(token), TokenRow.revoked_at.is_(None)
        )
        try:
            async with self.sessions() as session:
                row = (await session.execute(query)).first()
        except (OperationalError, OSError):
            # The registry is down: the caller may retry; this is not a bad token.
            raise Unavailable("the tenant registry is unavailable", reason="REGISTRY_UNAVAILABLE") from None
        return Principal(tenant=row.tenant, user=row.user) if row else None

    async def revoke_token(self, token: str) -> bool:
        query = (
            sa.update(TokenRow)
            .where(TokenRow.token_hash == hash_token(token), TokenRow.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        async with self.sessions.begin() as session:
            result = await session.execute(query)
        return bool(getattr(result, "rowcount", 0))

    async def close(self) -> None:
        await self.engine.dispose()
