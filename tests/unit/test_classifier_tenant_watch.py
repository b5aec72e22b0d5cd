"""WatchTenants' poller: a snapshot first, then only changed and removed tenants."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from common.errors import Unavailable
from services.classifier.convert import quotas_from_proto, quotas_to_proto, tenant_changes_to_proto
from services.classifier.model import Tenant, TenantQuotas
from services.classifier.tenant_watch import TenantChanges, diff_tenants, watch_tenants

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def tenant(name: str, share: float = 1.0, **quotas: float) -> Tenant:
    return Tenant(name, share, EPOCH, TenantQuotas(**quotas))  # type: ignore[arg-type]


def by_name(*tenants: Tenant) -> dict[str, Tenant]:
    return {t.name: t for t in tenants}


@pytest.mark.parametrize(
    ("before", "after", "changed", "removed"),
    [
        ((), (), [], []),
        ((tenant("a"),), (tenant("a"),), [], []),
        ((tenant("a"),), (tenant("a", 2.0),), ["a"], []),
        ((tenant("a"),), (tenant("a", max_running_tasks=3),), ["a"], []),
        ((tenant("a"), tenant("b")), (tenant("b"), tenant("c")), ["c"], ["a"]),
        ((), (tenant("b"), tenant("a")), ["a", "b"], []),
    ],
)
def test_diff(
    before: tuple[Tenant, ...], after: tuple[Tenant, ...], changed: list[str], removed: list[str]
) -> None:
    changes = diff_tenants(by_name(*before), by_name(*after))
    assert [t.name for t in changes.tenants] == changed
    assert changes.removed == removed
    assert bool(changes) == bool(changed or removed)


def test_created_at_alone_is_not_a_change() -> None:
    later = Tenant("a", 1.0, datetime(2027, 1, 1, tzinfo=UTC))
    assert not diff_tenants(by_name(tenant("a")), by_name(later))


class Registry:
    """Answers each read with the next scripted result: a list of tenants or an error."""

    def __init__(self, *reads: list[Tenant] | Exception) -> None:
        self.reads = list(reads)
        self.sleeps: list[float] = []

    async def load(self) -> list[Tenant]:
        result = self.reads.pop(0)
        if isinstance(result, Exception):
            raise result
        return result

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


async def test_snapshot_then_changes_only() -> None:
    registry = Registry(
        [tenant("acme"), tenant("globex")],
        [tenant("acme", 3.0), tenant("initech")],
        [tenant("acme", 3.0), tenant("initech")],  # quiet: nothing sent
        Unavailable("registry down"),  # logged, retried at the next poll
        [tenant("acme", 3.0, submit_rate_per_second=5.0), tenant("initech")],
    )
    stream = watch_tenants(registry.load, poll_s=1.5, sleep=registry.sleep)
    first = await anext(stream)
    assert first.snapshot and [t.name for t in first.tenants] == ["acme", "globex"]
    second = await anext(stream)
    assert not second.snapshot
    assert [(t.name, t.share) for t in second.tenants] == [("acme", 3.0), ("initech", 1.0)]
    assert second.removed == ["globex"]
    third = await anext(stream)
    assert [(t.name, t.quotas.submit_rate_per_second) for t in third.tenants] == [("acme", 5.0)]
    assert third.removed == [] and registry.sleeps == [1.5] * 4
    await stream.aclose()


async def test_a_failing_first_read_propagates() -> None:
    registry = Registry(Unavailable("registry down"))
    with pytest.raises(Unavailable):
        await anext(watch_tenants(registry.load, poll_s=1.0, sleep=registry.sleep))


def test_proto_round_trip() -> None:
    quotas = TenantQuotas(
        max_queued_tasks=10, max_running_tasks=2, submit_rate_per_second=1.5, submit_burst=4
    )
    assert quotas_from_proto(quotas_to_proto(quotas)) == quotas
    message = tenant_changes_to_proto(TenantChanges([tenant("a", 2.0, submit_burst=4)], ["b"], snapshot=True))
    assert message.snapshot and list(message.removed) == ["b"]
    assert (message.tenants[0].name, message.tenants[0].share, message.tenants[0].quotas.submit_burst) == (
        "a",
        2.0,
        4,
    )
