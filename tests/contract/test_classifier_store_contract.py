"""The tenant registry contract (services/classifier/store.py), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from common.auth import Principal, hash_token
from common.db import create_engine, is_postgres, upgrade
from common.errors import AlreadyExists, InvalidArgument, NotFound
from services.classifier.model import UNLIMITED, TenantQuotas
from services.classifier.sql_store import SqlTenantStore

MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "classifier" / "migrations"


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SqlTenantStore]:
    if not is_postgres(database_url):
        upgrade(database_url, "classifier", MIGRATIONS)
    s = SqlTenantStore(create_engine(database_url, "classifier"))
    yield s
    await s.close()


async def seeded(store: SqlTenantStore) -> None:
    await store.create_tenant("acme", 2.0)
    await store.create_user("acme", "alice")


async def test_tenants_and_users(store: SqlTenantStore) -> None:
    tenant = await store.create_tenant("acme", 2.5)
    assert (tenant.name, tenant.share) == ("acme", 2.5)
    await store.create_tenant("globex")
    got = await store.get_tenant("acme")
    assert got is not None and got.share == 2.5 and got.created_at.tzinfo is not None
    assert [t.name for t in await store.list_tenants()] == ["acme", "globex"]
    assert await store.get_tenant("initech") is None
    await store.create_user("acme", "alice")
    assert await store.get_user("acme", "alice") is not None
    assert await store.get_user("globex", "alice") is None


async def test_duplicates_and_missing_parents(store: SqlTenantStore) -> None:
    await seeded(store)
    with pytest.raises(AlreadyExists):
        await store.create_tenant("acme")
    with pytest.raises(AlreadyExists):
        await store.create_user("acme", "alice")
    with pytest.raises(NotFound):
        await store.create_user("nobody", "alice")
    with pytest.raises(NotFound):
        await store.issue_token("acme", "bob")


async def test_bad_names_and_shares(store: SqlTenantStore) -> None:
    with pytest.raises(InvalidArgument) as exc:
        await store.create_tenant("bad name!", -1)
    assert [v.field for v in exc.value.violations] == ["tenant", "share"]
    with pytest.raises(InvalidArgument):
        await store.create_tenant("x" * 65)


async def test_issue_resolve_revoke(store: SqlTenantStore) -> None:
    await seeded(store)
    issued = await store.issue_token("acme", "alice")
    other = await store.issue_token("acme", "alice")
    assert issued.token != other.token
    assert await store.resolve_token(issued.token) == Principal(tenant="acme", user="alice")
    assert await store.resolve_token("sy_not-a-token") is None
    assert await store.revoke_token(issued.token) is True
    assert await store.resolve_token(issued.token) is None
    assert await store.revoke_token(issued.token) is False
    assert await store.revoke_token("sy_never-issued") is False
    assert await store.resolve_token(other.token) == Principal(tenant="acme", user="alice")


async def test_only_hashes_are_stored(store: SqlTenantStore) -> None:
    await seeded(store)
    issued = await store.issue_token("acme", "alice")
    async with store.engine.connect() as conn:
        rows = (await conn.execute(sa.text("SELECT * FROM tokens"))).all()
    assert len(rows) == 1
    flat = " ".join(str(value) for value in rows[0])
    assert issued.token not in flat
    assert hash_token(issued.token) in flat


async def test_quotas_default_to_unlimited_and_update_keeps_what_is_not_given(store: SqlTenantStore) -> None:
    created = await store.create_tenant("acme", 2.0)
    assert created.quotas == UNLIMITED
    quotas = TenantQuotas(max_queued_tasks=100, max_running_tasks=8, submit_rate_per_second=2.5)
    await store.create_tenant("globex", quotas=quotas)
    got = await store.get_tenant("globex")
    assert got is not None and got.quotas == quotas and got.share == 1.0

    updated = await store.update_tenant("acme", quotas=TenantQuotas(submit_burst=50))
    assert (updated.share, updated.quotas) == (2.0, TenantQuotas(submit_burst=50))
    updated = await store.update_tenant("acme", share=4.0)
    assert (updated.share, updated.quotas) == (4.0, TenantQuotas(submit_burst=50))
    assert [(t.name, t.share, t.quotas) for t in await store.list_tenants()] == [
        ("acme", 4.0, TenantQuotas(submit_burst=50)),
        ("globex", 1.0, quotas),
    ]


async def test_bad_quotas_and_missing_tenant(store: SqlTenantStore) -> None:
    with pytest.raises(InvalidArgument) as exc:
        await store.create_tenant(
            "acme", quotas=TenantQuotas(max_queued_tasks=-1, submit_rate_per_second=float("inf"))
        )
    assert [v.field for v in exc.value.violations] == [
        "quotas.max_queued_tasks",
        "quotas.submit_rate_per_second",
    ]
    assert await store.get_tenant("acme") is None
    with pytest.raises(NotFound):
        await store.update_tenant("acme", share=2.0)
    await store.create_tenant("acme")
    with pytest.raises(InvalidArgument):
        await store.update_tenant("acme", share=0.0)
    with pytest.raises(InvalidArgument):
        await store.update_tenant("acme", quotas=TenantQuotas(submit_burst=10**13))
