"""The tenant registry behind a Protocol: tenants, their users, and users' bearer tokens.

Constraints (every implementation, checked by tests/contract/test_classifier_store_contract.py):
- Tokens are stored only as SHA-256 digests (`common.auth.hash_token`); the plain token
  exists once, in the `IssuedToken` that `issue_token` returns.
- `resolve_token` returns the token's principal only while the token exists and is not
  revoked; unknown and revoked tokens both resolve to None.
- Revoking is permanent and idempotent: `revoke_token` says whether it revoked anything.
- Tenant and user names are 1-64 characters of [A-Za-z0-9_.-]; creating one that exists
  raises AlreadyExists; a user or token of a missing tenant/user raises NotFound.
- A tenant's share is a finite number > 0 (default 1). Its quotas are numbers from 0 to
  MAX_QUOTA, 0 meaning unlimited (the default); a bad share or quota raises InvalidArgument
  naming every bad field. `update_tenant` changes only what it is given.
- `list_tenants` is ordered by name; an unreachable database raises Unavailable.
"""

from __future__ import annotations

import re
from typing import Protocol

from common.auth import Principal
from services.classifier.model import UNLIMITED, IssuedToken, Tenant, TenantQuotas, User

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_QUOTA = 10**12


class TenantStore(Protocol):
    async def create_tenant(
        self, name: str, share: float = 1.0, quotas: TenantQuotas = UNLIMITED
    ) -> Tenant: ...

    async def update_tenant(
        self, name: str, *, share: float | None = None, quotas: TenantQuotas | None = None
    ) -> Tenant: ...

    async def get_tenant(self, name: str) -> Tenant | None: ...

    async def list_tenants(self) -> list[Tenant]: ...

    async def create_user(self, tenant: str, name: str) -> User: ...

    async def get_user(self, tenant: str, name: str) -> User | None: ...

    async def issue_token(self, tenant: str, user: str) -> IssuedToken: ...

    async def resolve_token(self, token: str) -> Principal | None: ...

    async def revoke_token(self, token: str) -> bool: ...

    async def close(self) -> None: ...
