"""Tenant usage accounting and fair share, pure (DESIGN §4).

Usage is kept in reference-device-seconds: execution time scaled by how fast the device
is relative to the reference device, decayed with a half-life. The profile store applies
it to completed work; the scheduler can apply the same functions to in-flight work.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from services.profile_store.model import TenantScore

DEFAULT_SHARE = 1.0


def reference_speed(device_model: str, speeds: Mapping[str, float] | None = None) -> float:
    """How much faster than the reference device `device_model` is, from the speed table the
    profiles give (speeds.py): a second on a 2x device costs two reference seconds. A device
    without a measured speed counts as the reference (1.0)."""
    return (speeds or {}).get(device_model, 1.0)


def usage_charge(execution_s: float, device_model: str, speeds: Mapping[str, float] | None = None) -> float:
    return max(execution_s, 0.0) * reference_speed(device_model, speeds)


def decay(usage: float, elapsed_s: float, half_life_s: float) -> float:
    """Usage left after elapsed_s with the given half-life (no growth for negative time)."""
    return usage * math.pow(2.0, -max(elapsed_s, 0.0) / half_life_s)


def fair_share_factor(usage_fraction: float, share_fraction: float) -> tuple[float, float]:
    """(usage score U/S, factor 2^(-U/S)): 1 for an idle tenant, 0.5 at exactly its share."""
    if share_fraction <= 0:
        return (math.inf, 0.0) if usage_fraction > 0 else (0.0, 1.0)
    score = usage_fraction / share_fraction
    return score, math.pow(2.0, -score)


def tenant_scores(
    usages: Mapping[str, float], shares: Mapping[str, float] | None = None
) -> list[TenantScore]:
    """Scores of every tenant that has usage or a share, sorted by tenant.

    Tenants without a published share get DEFAULT_SHARE."""
    shares = shares or {}
    tenants = sorted(set(usages) | set(shares))
    share_of = {t: shares.get(t, DEFAULT_SHARE) for t in tenants}
    total_usage = sum(max(u, 0.0) for u in usages.values())
    total_share = sum(share_of.values())
    out: list[TenantScore] = []
    for tenant in tenants:
        usage = max(usages.get(tenant, 0.0), 0.0)
        u = usage / total_usage if total_usage > 0 else 0.0
        s = share_of[tenant] / total_share if total_share > 0 else 0.0
        score, factor = fair_share_factor(u, s)
        out.append(
            TenantScore(
                tenant=tenant,
                share=share_of[tenant],
                decayed_usage=usage,
                usage_score=score,
                fair_share_factor=factor,
            )
        )
    return out
