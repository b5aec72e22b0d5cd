"""What the demo prints: per tenant and category tasks, worker kinds, latency; failures; images."""

from __future__ import annotations

import importlib
import math
import urllib.parse
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from switchyard import render
from switchyard.v1 import types_pb2

HEADERS = ("TENANT", "CATEGORY", "TASKS", "OK", "WORKERS", "P50", "P95")
MAX_SHEET_IMAGES = 96


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def worker_kind(worker_id: str) -> str:
    """Workers of the local mesh are named cpu-N / gpu-N; anything else shows as is."""
    prefix = worker_id.split("-", 1)[0].upper()
    return prefix if prefix in {"CPU", "GPU"} else (worker_id or "none")


def latency(task: types_pb2.Task) -> float | None:
    return render.seconds_between(task.submitted_at, task.finished_at)


def _row(tenant: str, category: str, tasks: Sequence[types_pb2.Task]) -> list[object]:
    kinds = Counter(worker_kind(t.worker_id) for t in tasks)
    latencies = [x for x in (latency(t) for t in tasks) if x is not None]
    ok = sum(t.state == types_pb2.TASK_STATE_SUCCEEDED for t in tasks)
    return [
        tenant,
        category,
        len(tasks),
        ok,
        " ".join(f"{kind}x{n}" for kind, n in sorted(kinds.items())),
        render.duration(percentile(latencies, 50)),
        render.duration(percentile(latencies, 95)),
    ]


def summary_table(by_tenant: Mapping[str, Sequence[types_pb2.Task]], wall_s: float) -> str:
    """One row per (tenant, category), a total row per tenant, and a grand total."""
    rows: list[list[object]] = []
    for tenant, tasks in sorted(by_tenant.items()):
        by_category: dict[str, list[types_pb2.Task]] = defaultdict(list)
        for task in tasks:
            by_category[task.category or task.spec.category].append(task)
        rows += [_row(tenant, c, ts) for c, ts in sorted(by_category.items())]
        rows.append(_row(tenant, "(all)", tasks))
    everything = [t for ts in by_tenant.values() for t in ts]
    rows.append(_row("TOTAL", "(all)", everything))
    rate = len(everything) / wall_s if wall_s > 0 else 0.0
    footer = f"{len(everything)} tasks from {len(by_tenant)} tenants in {wall_s:.1f}s ({rate:.1f} tasks/s)"
    return f"{render.table(HEADERS, rows)}\n\n{footer}"


def failures(by_tenant: Mapping[str, Sequence[types_pb2.Task]]) -> list[str]:
    """One line per task that did not succeed."""
    return [
        f"{tenant}: {t.category or t.spec.category} {t.id} {render.state(t.state)} "
        f"{t.error.reason}: {t.error.message}".rstrip(": ")
        for tenant, tasks in sorted(by_tenant.items())
        for t in tasks
        if t.state != types_pb2.TASK_STATE_SUCCEEDED
    ]


def _artifact_paths(tasks: Iterable[types_pb2.Task]) -> list[Path]:
    paths = []
    for task in tasks:
        uri = task.result.artifact_uri
        if task.category == "create_synthetic_data" and uri.startswith("file://"):
            paths.append(Path(urllib.parse.unquote(urllib.parse.urlparse(uri).path)))
    return paths


def write_contact_sheet(by_tenant: Mapping[str, Sequence[types_pb2.Task]], path: Path) -> str:
    """Tile the images that create_synthetic_data rendered into one PNG; say where or why not."""
    paths = [p for ts in by_tenant.values() for p in _artifact_paths(ts) if p.is_file()]
    if not paths:
        return "contact sheet: no rendered images found"
    try:  # torch and the worker's PNG writer live on the service side: import only here
        torch: Any = importlib.import_module("torch")
        png: Any = importlib.import_module("services.worker.handlers.png")
    except ImportError as exc:
        return f"contact sheet skipped: {exc}"
    images = [torch.load(p, weights_only=True)["images"] for p in paths]
    batch = torch.cat(images)[:MAX_SHEET_IMAGES]
    path.parent.mkdir(parents=True, exist_ok=True)
    written = png.write_contact_sheet(batch, path)
    return f"contact sheet of {int(batch.shape[0])} rendered images: {Path(written).resolve()}"
