"""WatchTenants: the registry's tenants as a snapshot, then every change (DESIGN §7).

Classifier replicas are stateless, so each stream re-reads the tenants table every
`poll_s` seconds and sends only the tenants whose share or quotas changed, and the names
of those that are gone. The table holds one row per tenant, so a full read is cheap.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass

from common.errors import Unavailable
from services.classifier.model import Tenant

log = logging.getLogger(__name__)

LoadTenants = Callable[[], Awaitable[list[Tenant]]]


@dataclass(frozen=True)
class TenantChanges:
    tenants: list[Tenant]
    removed: list[str]
    snapshot: bool = False

    def __bool__(self) -> bool:
        return self.snapshot or bool(self.tenants or self.removed)


def diff_tenants(before: Mapping[str, Tenant], after: Mapping[str, Tenant]) -> TenantChanges:
    """Tenants new or changed in `after` (share or quotas), and the names gone from it."""
    changed = [
        tenant
        for name, tenant in sorted(after.items())
        if name not in before or _terms(before[name]) != _terms(tenant)
    ]
    return TenantChanges(changed, sorted(set(before) - set(after)))


def _terms(tenant: Tenant) -> tuple[object, ...]:
    return (tenant.share, tenant.quotas)


async def watch_tenants(
    load: LoadTenants,
    *,
    poll_s: float,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> AsyncGenerator[TenantChanges, None]:
    """Yield the snapshot, then a change set whenever a poll finds one; runs until cancelled.

    A failing first read propagates (the caller retries); a failing later read is logged
    and retried at the next poll, so a brief database outage does not end every stream.
    """
    current = {t.name: t for t in await load()}
    yield TenantChanges(list(current.values()), [], snapshot=True)
    while True:
        await sleep(poll_s)
        try:
            fresh = {t.name: t for t in await load()}
        except Unavailable as exc:
            log.warning("tenant registry read failed; retrying", extra={"error": exc.message})
            continue
        changes = diff_tenants(current, fresh)
        current = fresh
        if changes:
            yield changes
