"""Shared pieces of benchmark reports: the header, median and range formatting, plots."""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPORTS = Path(__file__).resolve().parent / "reports"


def header(title: str, command: str, notes: Sequence[str] = ()) -> list[str]:
    machine = f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}"
    return [
        f"# {title}",
        "",
        f"Reproduce: `{command}`",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine}.",
        *notes,
        "",
    ]


def spread(values: Sequence[float], fmt: str = ",.0f") -> str:
    """median (min-max)"""
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def write(name: str, lines: Sequence[str], data: Any) -> Path:
    REPORTS.mkdir(exist_ok=True)
    path = REPORTS / f"{name}.md"
    path.write_text("\n".join(lines) + "\n")
    (REPORTS / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    return path


def pyplot() -> Any | None:
    """matplotlib's pyplot (Agg backend), or None when the bench extra is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt
