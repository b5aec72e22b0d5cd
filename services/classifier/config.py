"""Settings of the classifier service (section `classifier`, env `SWITCHYARD_CLASSIFIER_*`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from common.config import ServerConfig
from services.classifier.catalogue import read_categories_file
from services.classifier.model import CategoryProfile

PROFILES = tuple(p.value for p in CategoryProfile)


@dataclass(frozen=True, kw_only=True)
class ClassifierConfig(ServerConfig):
    section: ClassVar[str] = "classifier"

    port: int = 50051
    database_url: str = "sqlite:///.switchyard/classifier.db"
    scheduler_address: str = "127.0.0.1:50052"
    # "local" turns GPU_ONLY categories into CPU_OR_GPU on a machine without a GPU.
    category_profile: str = "default"
    # Optional YAML adding or overriding categories: {categories: [{name, eligibility, priority_class}]}.
    categories_file: str = ""
    token_cache_s: float = 5.0
    max_tasks_per_submit: int = 10000
    max_task_data_bytes: int = 1048576
    max_task_parameters_bytes: int = 65536
    # A whole submit, its split expanded (the reply echoes every task; gRPC allows 32 MiB).
    max_submit_bytes: int = 16777216
    # Run without authentication (every caller is tenant "default"); never the default.
    allow_anonymous: bool = False
    # Deadline of unary calls to the scheduler.
    scheduler_timeout_s: float = 30.0
    # How often each WatchTenants stream re-reads the tenant registry for changes.
    tenant_watch_poll_s: float = 2.0

    def problems(self) -> list[str]:
        out = super().problems()
        if not self.database_url.startswith(("sqlite", "postgresql")):
            out.append(f"database_url: {self.database_url!r} is neither sqlite:/// nor postgresql://")
        if not self.scheduler_address.strip():
            out.append("scheduler_address: must not be empty")
        if self.category_profile not in PROFILES:
            out.append(f"category_profile: {self.category_profile!r} is not one of {', '.join(PROFILES)}")
        if self.token_cache_s < 0:
            out.append("token_cache_s: must not be negative")
        if self.max_tasks_per_submit < 1:
            out.append("max_tasks_per_submit: must be at least 1")
        for name in ("max_task_data_bytes", "max_task_parameters_bytes"):
            if getattr(self, name) < 0:
                out.append(f"{name}: must not be negative")
        if not 1024 <= self.max_submit_bytes <= 24 * 1048576:
            out.append("max_submit_bytes: must be from 1024 to 25165824 (24 MiB, under gRPC's 32 MiB)")
        if self.scheduler_timeout_s <= 0:
            out.append("scheduler_timeout_s: must be positive")
        if not 0.05 <= self.tenant_watch_poll_s <= 3600:
            out.append("tenant_watch_poll_s: must be from 0.05 to 3600 seconds")
        out.extend(read_categories_file(self.categories_file)[1])
        return out
