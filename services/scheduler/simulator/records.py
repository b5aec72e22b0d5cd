"""What a run leaves behind: one row per finished (or expired) task, in compact arrays."""

from __future__ import annotations

import math
from array import array

from services.scheduler.simulator.model import Arrival


class Records:
    """Columns: arrival, ready (queued), start, end, deadline (nan when none), work, and
    indexes into `tenants` and `devices` (device -1: expired before it started)."""

    def __init__(self) -> None:
        self.arrival = array("d")
        self.ready = array("d")
        self.start = array("d")
        self.end = array("d")
        self.deadline = array("d")
        self.work = array("d")
        self.qos = array("b")
        self.tenant = array("i")
        self.device = array("i")
        self.tenants: list[str] = []
        self.devices: list[str] = []
        self._tenant_ix: dict[str, int] = {}
        self._device_ix: dict[str, int] = {}
        # Tasks still queued or waiting on dependencies when the events ran out.
        self.unfinished = 0

    def __len__(self) -> int:
        return len(self.end)

    def add(self, arrival: Arrival, ready: float, start: float, end: float, device: str | None) -> None:
        d = arrival.demand
        self.arrival.append(d.enqueued_at)
        self.ready.append(ready)
        self.start.append(start)
        self.end.append(end)
        self.deadline.append(math.nan if d.deadline is None else d.deadline)
        self.work.append(arrival.work)
        self.qos.append(int(d.qos_class))
        self.tenant.append(self._index(self._tenant_ix, self.tenants, d.tenant))
        self.device.append(-1 if device is None else self._index(self._device_ix, self.devices, device))

    @staticmethod
    def _index(ix: dict[str, int], names: list[str], name: str) -> int:
        found = ix.get(name)
        if found is None:
            found = ix[name] = len(names)
            names.append(name)
        return found
