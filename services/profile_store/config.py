"""Settings of the profile store (section `profile_store`, env `SWITCHYARD_PROFILE_STORE_*`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from common.config import ServerConfig


@dataclass(frozen=True, kw_only=True)
class ProfileStoreConfig(ServerConfig):
    """The profile store's configuration: its database and the profile/usage arithmetic."""

    section: ClassVar[str] = "profile_store"

    port: int = 50053
    database_url: str = "sqlite:///.switchyard/profile_store.db"
    # Weight of the newest sample in the EWMA of execution time (follows speed changes).
    ewma_alpha: float = 0.2
    # Tenant usage halves every this many seconds (DESIGN §4 fair share).
    usage_half_life_s: float = 3600
    # Device model whose seconds are the unit of tenant usage; "" = the most-measured one.
    reference_device: str = ""
    # Samples a profile needs before its mean counts towards a device's speed.
    speed_min_samples: int = 3
    # The classifier, whose tenant registry gives the tenants' shares (WatchTenants);
    # "" = no classifier, every tenant has share 1.0.
    classifier_address: str = "127.0.0.1:50051"
    # Watch streams send at most one message per window, holding every change in it.
    watch_coalesce_s: float = 0.5
    # Most metrics in one IngestMetrics request; larger requests are refused item by item.
    ingest_batch_max: int = 500
    # Most metrics in one ingest transaction: requests arriving while one commits share the
    # next (group commit); a single larger request still gets one of its own.
    ingest_commit_max: int = 5000

    def problems(self) -> list[str]:
        out = super().problems()
        if not self.database_url.startswith(("sqlite://", "postgresql://", "postgresql+")):
            out.append(f"database_url: {self.database_url!r} is not a sqlite:// or postgresql:// URL")
        if not (math.isfinite(self.ewma_alpha) and 0 < self.ewma_alpha <= 1):
            out.append("ewma_alpha: must be in (0, 1]")
        if not (math.isfinite(self.usage_half_life_s) and self.usage_half_life_s > 0):
            out.append("usage_half_life_s: must be positive")
        if not (math.isfinite(self.watch_coalesce_s) and 0 <= self.watch_coalesce_s <= 60):
            out.append("watch_coalesce_s: must be between 0 and 60")
        if not 1 <= self.speed_min_samples <= 1_000_000:
            out.append("speed_min_samples: must be between 1 and 1000000")
        if not 1 <= self.ingest_batch_max <= 10_000:
            out.append("ingest_batch_max: must be between 1 and 10000")
        if not 1 <= self.ingest_commit_max <= 100_000:
            out.append("ingest_commit_max: must be between 1 and 100000")
        return out
