"""`TokenAuthenticator`: bearer tokens → principals, from the tenant registry, cached briefly."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable

from common.auth import INTERNAL_TENANT, Principal, hash_token
from services.classifier.store import TenantStore

INTERNAL_PRINCIPAL = Principal(tenant=INTERNAL_TENANT, user="service", internal=True)


class TokenAuthenticator:
    """Implements `common.auth.Authenticator` for the classifier.

    The shared internal token resolves to the internal principal (operators and services);
    any other token is looked up by its hash. Answers, including "no such token", are kept
    for `cache_s` seconds, so a revoked token stops working within that time.
    """

    def __init__(
        self,
        store: TenantStore,
        internal_token: str,
        *,
        cache_s: float = 5.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.internal_token = internal_token
        self.cache_s = cache_s
        self.max_entries = max_entries
        self.clock = clock
        # Keyed by the token's hash, so plain tokens are not kept in memory.
        self._cache: dict[str, tuple[Principal | None, float]] = {}

    async def authenticate(self, token: str) -> Principal | None:
        if self.internal_token and hmac.compare_digest(token.encode(), self.internal_token.encode()):
            return INTERNAL_PRINCIPAL
        key, now = hash_token(token), self.clock()
        cached = self._cache.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        principal = await self.store.resolve_token(token)
        if self.cache_s > 0:
            self._remember(key, principal, now)
        return principal

    def forget(self) -> None:
        self._cache.clear()

    def _remember(self, key: str, principal: Principal | None, now: float) -> None:
        if len(self._cache) >= self.max_entries:
            self._cache = {k: v for k, v in self._cache.items() if v[1] > now}
            if len(self._cache) >= self.max_entries:
                self._cache.clear()
        self._cache[key] = (principal, now + self.cache_s)
