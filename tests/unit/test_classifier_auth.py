"""TokenAuthenticator caching and the internal token; proto conversions round-trip."""

from __future__ import annotations

import pytest

from common.auth import INTERNAL_TENANT, Principal
from services.classifier.auth import TokenAuthenticator
from services.classifier.convert import (
    classification_from_proto,
    classification_to_proto,
    eligibility_from_proto,
    eligibility_to_proto,
)
from services.classifier.model import Classification, Eligibility

ALICE = Principal(tenant="acme", user="alice")
INTERNAL = "unit-internal-token-123"


class FakeStore:
    def __init__(self) -> None:
        self.tokens = {"sy_good": ALICE}
        self.lookups = 0

    async def resolve_token(self, token: str) -> Principal | None:
        self.lookups += 1
        return self.tokens.get(token)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def authenticator(store: FakeStore, clock: Clock, cache_s: float = 5.0, **kw: int) -> TokenAuthenticator:
    return TokenAuthenticator(store, INTERNAL, cache_s=cache_s, clock=clock, **kw)  # type: ignore[arg-type]


async def test_answers_are_cached_until_they_expire() -> None:
    store, clock = FakeStore(), Clock()
    auth = authenticator(store, clock)
    assert await auth.authenticate("sy_good") == ALICE
    assert await auth.authenticate("sy_bad") is None
    del store.tokens["sy_good"]  # revoked
    assert await auth.authenticate("sy_good") == ALICE
    assert await auth.authenticate("sy_bad") is None
    assert store.lookups == 2
    clock.now += 5.1
    assert await auth.authenticate("sy_good") is None
    assert store.lookups == 3


async def test_cache_off_and_bounded() -> None:
    store, clock = FakeStore(), Clock()
    uncached = authenticator(store, clock, cache_s=0)
    for _ in range(3):
        await uncached.authenticate("sy_good")
    assert store.lookups == 3
    bounded = authenticator(store, clock, max_entries=4)
    for i in range(20):
        await bounded.authenticate(f"sy_{i}")
    assert len(bounded._cache) <= 4


async def test_internal_token_is_the_internal_principal() -> None:
    store = FakeStore()
    principal = await authenticator(store, Clock()).authenticate(INTERNAL)
    assert principal is not None and principal.internal and principal.tenant == INTERNAL_TENANT
    assert store.lookups == 0


@pytest.mark.parametrize("value", list(Eligibility))
def test_eligibility_round_trip(value: Eligibility) -> None:
    assert eligibility_from_proto(eligibility_to_proto(value)) is value


def test_eligibility_unspecified_has_no_domain_value() -> None:
    with pytest.raises(ValueError):
        eligibility_from_proto(0)  # type: ignore[arg-type]


def test_classification_round_trip() -> None:
    value = Classification("inference", Eligibility.GPU_ONLY, 70, "constraint:precision=fp16")
    assert classification_from_proto(classification_to_proto(value)) == value
