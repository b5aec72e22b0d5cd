"""The profile store's persistence seam.

`ProfileStore` is what the servicer needs; `SqlProfileStore` (sql_store.py) implements it on
PostgreSQL and SQLite, and one contract suite (tests/contract) holds both to it.

Constraints
-----------
- Ingest is idempotent on (task_id, attempt): a metric stored before (or twice in the same
  batch) is reported as a duplicate and changes nothing, so a worker may resend freely.
- One call of `ingest` is one transaction: samples, profile updates, the resource upsert
  and tenant usage commit together or not at all.
- Only SUCCEEDED metrics with an execution time update profiles (device-model and
  per-worker); every stored metric with an execution time charges its tenant's usage.
- Tenant usage is in reference-device-seconds (execution time x the device model's speed
  from `speed_table`, derived from the committed profiles, see speeds.py), decayed with
  the configured half-life; reads decay it to the store's clock, so all tenants are
  compared at the same instant.
- One profile store process writes a database at a time (ingest is serialised in process).
- Metrics are validated by the caller; the store trusts them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from services.profile_store.model import (
    IngestResult,
    Metric,
    Profile,
    ProfileFilter,
    ProfileKey,
    ProfilePage,
    Resource,
    TenantScore,
    WorkerProfile,
)
from services.profile_store.speeds import SpeedTable


class ProfileStore(Protocol):
    async def ingest(self, metrics: Sequence[Metric]) -> IngestResult:
        """Store a batch of validated metrics in one transaction and fold them in."""
        ...

    async def get_profile(self, key: ProfileKey) -> Profile | None: ...

    async def list_profiles(self, filter: ProfileFilter, *, after: str = "", limit: int = 100) -> ProfilePage:
        """Profiles matching `filter`, ordered by key id, starting after key id `after`."""
        ...

    async def all_profiles(self) -> list[Profile]:
        """Every profile (the snapshot a watch stream starts with)."""
        ...

    async def worker_profiles(self, key: ProfileKey) -> list[WorkerProfile]: ...

    async def resources(self) -> list[Resource]: ...

    async def tenant_scores(self) -> list[TenantScore]:
        """Every tenant's decayed usage and fair-share score, as of now."""
        ...

    async def speed_table(self) -> SpeedTable:
        """Each device model's speed relative to the reference device, as charged now."""
        ...

    def set_shares(self, shares: Mapping[str, float]) -> None:
        """Replace the tenants' shares (from the tenant registry); unknown tenants get 1.0."""
        ...

    async def close(self) -> None: ...
