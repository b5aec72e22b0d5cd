"""What the trace loaders share: a time window, and a record of the rows they skip.

A window is given in trace seconds from the trace's origin (each loader says what its
origin is), before compression: rows arriving in [start, end) are kept and their arrival
becomes (trace time - start) / compression. A row that cannot be read (a missing or
unparsable field, too few columns) is skipped, never guessed at, and noted in `Skipped`
with its file and line so that a report can say how many rows it left out.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Window:
    """[start_s, end_s) in trace seconds from the trace's origin."""

    start_s: float = 0.0
    end_s: float = math.inf

    def __post_init__(self) -> None:
        if not self.start_s < self.end_s:
            raise ValueError(f"empty window [{self.start_s}, {self.end_s})")

    def __contains__(self, trace_s: object) -> bool:
        return isinstance(trace_s, float | int) and self.start_s <= trace_s < self.end_s

    def arrival(self, trace_s: float, compression: float) -> float:
        """Simulated arrival of a row at `trace_s`: from the window's start, compressed."""
        return (trace_s - self.start_s) / compression


EVERYTHING = Window()


@dataclass
class Skipped:
    """Rows a loader left out, as 'file:line: reason'."""

    rows: list[str] = field(default_factory=list)

    def add(self, path: Path, line: int, reason: str) -> None:
        self.rows.append(f"{path.name}:{line}: {reason}")

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[str]:
        return iter(self.rows)


def number(row: dict[str, str], column: str, default: float | None = None) -> float:
    """A numeric field; empty means `default` (or an error when there is none)."""
    value = (row.get(column) or "").strip()
    if not value:
        if default is None:
            raise ValueError(f"{column} is empty")
        return default
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{column} is not a number: {value!r}") from None
