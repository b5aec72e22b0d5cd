"""Scheduler settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from common.config import ServerConfig


@dataclass(frozen=True, kw_only=True)
class SchedulerConfig(ServerConfig):
    section: ClassVar[str] = "scheduler"

    port: int = 50052
    database_url: str = "sqlite:///.switchyard/scheduler.db"
    profile_store_address: str = "127.0.0.1:50053"
    # The classifier's tenant registry (shares and quotas arrive over WatchTenants).
    classifier_address: str = "127.0.0.1:50051"
    heartbeat_interval_ms: int = 1000
    heartbeat_timeout_s: float = 10.0
    # How often the placement loop runs when nothing wakes it earlier.
    cycle_interval_s: float = 0.05
    reprioritize_interval_s: float = 5.0
    commit_batch_max: int = 2000
    # ASSIGNED and RUNNING writes (a restart requeues those tasks either way) wait this long
    # (or for a flush): a task that finishes sooner is mostly written only once more, ended.
    commit_defer_s: float = 0.1
    max_placements_per_cycle: int = 1000
    max_attempts: int = 3
    # Assignments a worker may hold beyond its slots, per slot (they wait on the worker).
    worker_prefetch_per_slot: int = 1
    # Short tasks get more: a worker may hold up to this much of its measured task time per
    # slot beyond its slots (so a slot finishing a 1 ms task finds work there, not a round
    # trip away), never fewer than worker_prefetch_per_slot nor more than the cap below
    # (unless worker_prefetch_per_slot is higher). 0 s: no more than the minimum.
    prefetch_window_s: float = 0.05
    worker_prefetch_max_per_slot: int = 128
    # Finished tasks answered from memory (about 1.2 KB each) before reads go to the
    # database: a client collecting a large batch's results finds them all here.
    recent_results_max: int = 50_000
    # How long start() waits to become active before returning as a standby.
    standby_wait_s: float = 5.0
    weight_category: float = 1000.0
    weight_qos: float = 500.0
    weight_fair_share: float = 1000.0
    weight_age: float = 100.0
    usage_half_life_s: float = 3600.0
    # Slurm's fair-share dampening d in 2^(-U/(S·d)); 1 is the classic factor. With
    # thousands of tenants every backlogged tenant's classic factor is about 0, and d > 1
    # keeps them apart (the GenAI replay in docs/simulator.md uses 100).
    fair_share_dampening: float = 1.0
    prior_cpu_seconds: float = 1.0
    prior_gpu_seconds: float = 0.5

    def problems(self) -> list[str]:
        out = super().problems()
        if not self.database_url:
            out.append("database_url: must be set")
        for name in ("heartbeat_timeout_s", "cycle_interval_s", "reprioritize_interval_s", "commit_defer_s"):
            if getattr(self, name) <= 0:
                out.append(f"{name}: must be positive")
        if self.heartbeat_interval_ms <= 0:
            out.append("heartbeat_interval_ms: must be positive")
        if self.heartbeat_timeout_s * 1000 <= self.heartbeat_interval_ms:
            out.append("heartbeat_timeout_s: must be longer than the heartbeat interval")
        if not 0 <= self.worker_prefetch_per_slot <= 64:
            out.append("worker_prefetch_per_slot: must be between 0 and 64")
        if not 0 <= self.worker_prefetch_max_per_slot <= 1024:
            out.append("worker_prefetch_max_per_slot: must be between 0 and 1024")
        if self.prefetch_window_s < 0:
            out.append("prefetch_window_s: must not be negative")
        if not 0 <= self.recent_results_max <= 10_000_000:
            out.append("recent_results_max: must be between 0 and 10,000,000")
        if self.commit_batch_max < 1 or self.max_placements_per_cycle < 1 or self.max_attempts < 1:
            out.append("commit_batch_max, max_placements_per_cycle and max_attempts: must be at least 1")
        if not 1.0 <= self.fair_share_dampening <= 1e6:
            out.append("fair_share_dampening: must be between 1 and 1e6")
        for name in ("weight_category", "weight_qos", "weight_fair_share", "weight_age"):
            if getattr(self, name) < 0:
                out.append(f"{name}: must not be negative")
        return out
