"""One priority queue per eligibility group, with lazy removal and ordered iteration.

Priorities are computed when a task is pushed and refreshed by `reprioritize` (the
service calls it every few seconds, as Slurm recomputes its priorities), so a pop or an
ordered walk of the first k tasks costs O(k log n) whatever the queue length.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterator
from typing import NamedTuple


class Entry(NamedTuple):
    """A heap entry; a plain tuple underneath, so heap comparisons run at C speed."""

    neg_priority: float
    seq: int
    task_id: str

    @property
    def priority(self) -> float:
        return -self.neg_priority


class GroupQueue:
    def __init__(self) -> None:
        self._heap: list[Entry] = []
        self._live: dict[str, Entry] = {}
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._live

    def push(self, task_id: str, priority: float) -> None:
        entry = Entry(-priority, next(self._seq), task_id)
        self._live[task_id] = entry
        heapq.heappush(self._heap, entry)
        if len(self._heap) > 2 * len(self._live) + 64:
            self._compact()

    def remove(self, task_id: str) -> bool:
        """Forget a task (placed, cancelled); its heap entry is dropped lazily, and at once
        when it sits at the top (placed tasks usually do), so walks never wade through them."""
        found = self._live.pop(task_id, None) is not None
        heap = self._heap
        while heap and self._live.get(heap[0].task_id) is not heap[0]:
            heapq.heappop(heap)
        return found

    def priority_of(self, task_id: str) -> float | None:
        entry = self._live.get(task_id)
        return None if entry is None else entry.priority

    def ordered(self) -> Iterator[Entry]:
        """Yield live entries best first without changing the queue (a walk of the heap tree)."""
        heap = self._heap
        frontier: list[tuple[Entry, int]] = [(heap[0], 0)] if heap else []
        while frontier:
            entry, index = heapq.heappop(frontier)
            for child in (2 * index + 1, 2 * index + 2):
                if child < len(heap):
                    heapq.heappush(frontier, (heap[child], child))
            if self._live.get(entry.task_id) is entry:
                yield entry

    def position(self, task_id: str) -> int | None:
        """1-based rank of a task (O(n); for Explain, not the hot path)."""
        entry = self._live.get(task_id)
        if entry is None:
            return None
        return 1 + sum(1 for other in self._live.values() if other < entry)

    def reprioritize(self, priority_of: Callable[[str], float]) -> None:
        """Recompute every priority and rebuild the heap, keeping arrival order for ties."""
        self._live = {tid: Entry(-priority_of(tid), e.seq, tid) for tid, e in self._live.items()}
        self._heap = list(self._live.values())
        heapq.heapify(self._heap)

    def _compact(self) -> None:
        self._heap = [e for e in self._heap if self._live.get(e.task_id) is e]
        heapq.heapify(self._heap)
