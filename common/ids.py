"""Identifiers: a prefix and a time-ordered, random suffix (sortable by creation time)."""

from __future__ import annotations

import os
import time


def new_id(prefix: str) -> str:
    """e.g. new_id("task") -> "task_0192f3c1a7b2_5f1e9c3a0d4b6e21"."""
    millis = time.time_ns() // 1_000_000
    return f"{prefix}_{millis:012x}_{os.urandom(8).hex()}"


def new_ids(prefix: str, count: int) -> list[str]:
    """`count` ids in `new_id`'s format, with one clock read and one call for the
    randomness of all of them (a submit mints hundreds at once)."""
    millis = time.time_ns() // 1_000_000
    random = os.urandom(8 * count).hex()
    return [f"{prefix}_{millis:012x}_{random[i : i + 16]}" for i in range(0, 16 * count, 16)]
