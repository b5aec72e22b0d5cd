"""Azure LLM inference 2023 (Splitwise): arrivals and sizes of latency-critical requests.

Mapping (the trace gives arrival times and token counts only; these are assumptions):
* request → one task: category inference, QoS LATENCY_CRITICAL, GPU_ONLY, model
  `llm-code` or `llm-conv` (the service), batch size 1, tenant = the service.
* work on the reference GPU (A100-class, speed 1.0) = 0.15 s + ContextTokens / 20,000 tok/s
  (prefill) + GeneratedTokens x 20 ms (decode).
* SLO: deadline = arrival + max(`slo_factor` x work, `slo_floor_s`) — a multiple of the
  request's unloaded execution time on the reference device.
* arrival = TIMESTAMP - the first request of the two files (the origin; a window is counted
  from it), divided by the compression.
* skipped (and counted): rows without three fields, or with an unreadable time or count.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from services.scheduler.core.model import Group, QosClass, TaskDemand
from services.scheduler.simulator.model import PRIORITY_CLASS, Arrival
from services.scheduler.simulator.traces import EVERYTHING, Skipped, Window

FILES = {
    "code": "azure_llm_2023/AzureLLMInferenceTrace_code.csv",
    "conv": "azure_llm_2023/AzureLLMInferenceTrace_conv.csv",
}
PREFILL_TOKENS_PER_S = 20_000.0
DECODE_S_PER_TOKEN = 0.02
OVERHEAD_S = 0.15


def work_seconds(context: int, generated: int) -> float:
    return OVERHEAD_S + context / PREFILL_TOKENS_PER_S + generated * DECODE_S_PER_TOKEN


def _parse(stamp: str) -> float:
    day, _, frac = stamp.strip().partition(".")
    seconds = datetime.strptime(day, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()
    if frac and not frac.isdigit():
        raise ValueError(f"bad fraction of a second: {stamp!r}")
    return seconds + (float("0." + frac) if frac else 0.0)


def _row(line: str) -> tuple[float, int, int]:
    fields = line.strip().split(",")
    if len(fields) != 3:
        raise ValueError(f"{len(fields)} fields, not 3")
    stamp, context, generated = fields
    try:
        tokens = int(context), int(generated)
    except ValueError:
        raise ValueError(f"token counts are not integers: {context!r}, {generated!r}") from None
    if min(tokens) < 0:
        raise ValueError("negative token count")
    return _parse(stamp), *tokens


def read_raw(
    traces: Path,
    services: tuple[str, ...] = ("code", "conv"),
    limit: int | None = None,
    skipped: Skipped | None = None,
) -> list[tuple[float, str, int, int]]:
    """(absolute arrival s, service, context tokens, generated tokens), sorted by arrival."""
    rows: list[tuple[float, str, int, int]] = []
    for service in services:
        path = traces / FILES[service]
        with path.open() as f:
            next(f)
            for n, line in enumerate(f):
                if limit is not None and n >= limit:
                    break
                if not line.strip():
                    continue
                try:
                    at, context, generated = _row(line)
                except ValueError as exc:
                    if skipped is not None:
                        skipped.add(path, n + 2, str(exc))
                    continue
                rows.append((at, service, context, generated))
    rows.sort()
    return rows


def load_requests(
    traces: Path,
    compression: float = 1.0,
    *,
    slo_factor: float = 5.0,
    slo_floor_s: float = 1.0,
    limit: int | None = None,
    window: Window = EVERYTHING,
    skipped: Skipped | None = None,
) -> list[Arrival]:
    rows = read_raw(traces, limit=limit, skipped=skipped)
    first = rows[0][0] if rows else 0.0
    out = []
    for n, (at, service, context, generated) in enumerate(rows):
        if at - first not in window:
            continue
        work = work_seconds(context, generated)
        arrival = window.arrival(at - first, compression)
        demand = TaskDemand(
            task_id=f"llm-{service}-{n}",
            tenant=f"llm-{service}",
            category="inference",
            group=Group.GPU_ONLY,
            priority_class=PRIORITY_CLASS["inference"],
            qos_class=QosClass.LATENCY_CRITICAL,
            model=f"llm-{service}",
            precision=0,
            batch_size=1,
            enqueued_at=arrival,
            deadline=arrival + max(slo_factor * work, slo_floor_s),
        )
        out.append(Arrival(demand, work))
    return out
