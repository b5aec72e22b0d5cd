"""From a submit request to classified tasks: validate, classify, split, mint ids.

No I/O: the servicer sends the planned tasks to the scheduler in one EnqueueTasks call.

A spec's verdict depends on its content alone, so an accepted spec's classification is
remembered by its deterministic wire bytes: the identical specs of a batch (and of the
submits after it) are validated and classified once. Rejected specs are never remembered,
so every error still names its own field paths.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from common.auth import Principal
from common.errors import Violations
from common.ids import new_id, new_ids
from common.timeutil import utcnow
from services.classifier.convert import task_template, traits_from_proto
from services.classifier.model import Classification
from services.classifier.rules import Catalogue, classify, split_sizes
from services.classifier.validation import (
    Context,
    Limits,
    check_submit_size,
    validate_spec,
    validate_split,
)
from switchyard.v1 import classifier_pb2, scheduler_pb2, types_pb2

SPLIT_LABEL = "split_index"
# Accepted specs remembered (cleared when full), and the largest spec worth remembering:
# a big payload is rare, costs more to keep than to check, and would pin its bytes.
MEMO_ENTRIES = 4096
MEMO_SPEC_BYTES = 4096


@dataclass(frozen=True)
class Plan:
    job_id: str
    # The scheduler's request, built in place: no copy of each task between here and the wire.
    request: scheduler_pb2.EnqueueTasksRequest = field(default_factory=scheduler_pb2.EnqueueTasksRequest)

    @property
    def tasks(self) -> Sequence[types_pb2.Task]:
        return self.request.tasks


class Intake:
    def __init__(
        self,
        catalogue: Catalogue,
        limits: Limits,
        clock: Callable[[], datetime] = utcnow,
        *,
        memo_entries: int = MEMO_ENTRIES,
    ) -> None:
        self.ctx = Context(catalogue, limits)
        self.clock = clock
        self.memo_entries = memo_entries
        self._memo: dict[bytes, Classification] = {}

    @property
    def remembered(self) -> int:
        """How many accepted specs are remembered now."""
        return len(self._memo)

    def classify(self, specs: Sequence[types_pb2.TaskSpec]) -> list[Classification]:
        """Validate and classify every spec (ClassifyTasks); raises one InvalidArgument."""
        check_submit_size(classifier_pb2.SubmitTasksRequest(tasks=specs), self.ctx.limits)
        v = Violations()
        results = [self._checked(spec, f"tasks[{i}]", v) for i, spec in enumerate(specs)]
        v.raise_if_any()
        return [r for r in results if r is not None]

    def plan(self, request: classifier_pb2.SubmitTasksRequest, principal: Principal) -> Plan:
        """The classified tasks of one submit, all under one new job id."""
        check_submit_size(request, self.ctx.limits)
        v = Violations()
        if not request.tasks and not request.HasField("split"):
            v.add("tasks", "give at least one task spec or a split")
        pairs = [(spec, self._checked(spec, f"tasks[{i}]", v)) for i, spec in enumerate(request.tasks)]
        if request.HasField("split"):
            pairs.extend(self._split(request.split, v))
        v.raise_if_any()
        plan = Plan(new_id("job"))
        submitted_at = self.clock()
        # One template per classification (the memo hands out one object per verdict).
        templates: dict[int, types_pb2.Task] = {}
        add = plan.request.tasks.add
        for (spec, result), task_id in zip(pairs, new_ids("task", len(pairs)), strict=True):
            if result is None:
                continue
            template = templates.get(id(result))
            if template is None:
                template = templates[id(result)] = task_template(
                    job_id=plan.job_id, principal=principal, classification=result, submitted_at=submitted_at
                )
            task = add()
            task.CopyFrom(template)
            task.id = task_id
            task.spec.CopyFrom(spec)
        return plan

    def _checked(self, spec: types_pb2.TaskSpec, path: str, v: Violations) -> Classification | None:
        if len(spec.data) > MEMO_SPEC_BYTES:
            return self._verdict(spec, path, v)
        key = spec.SerializeToString(deterministic=True)
        known = self._memo.get(key)
        if known is not None:
            return known
        result = self._verdict(spec, path, v)
        if result is not None and len(key) <= MEMO_SPEC_BYTES and self.memo_entries > 0:
            if len(self._memo) >= self.memo_entries:
                self._memo.clear()
            self._memo[key] = result
        return result

    def _verdict(self, spec: types_pb2.TaskSpec, path: str, v: Violations) -> Classification | None:
        before = len(v.items)
        validate_spec(spec, path, self.ctx, v)
        if len(v.items) > before:
            return None
        result = classify(traits_from_proto(spec), self.ctx.catalogue)
        if isinstance(result, Classification):
            return result
        for conflict in result:
            v.add(f"{path}.{conflict.field}", conflict.description)
        return None

    def _split(
        self, split: types_pb2.SplitRequest, v: Violations
    ) -> list[tuple[types_pb2.TaskSpec, Classification | None]]:
        before = len(v.items)
        validate_split(split, self.ctx, v)
        if len(v.items) > before:
            return []
        result = self._checked(split.template, "split.template", v)
        return [(spec, result) for spec in split_specs(split)]


def split_specs(split: types_pb2.SplitRequest) -> list[types_pb2.TaskSpec]:
    """One spec per batch: item_count = min(b, remaining), batch_size b, label split_index."""
    out: list[types_pb2.TaskSpec] = []
    for index, size in enumerate(split_sizes(split.total_items, split.batch_size)):
        spec = types_pb2.TaskSpec()
        spec.CopyFrom(split.template)
        spec.item_count = size
        spec.batch_size = split.batch_size
        spec.labels[SPLIT_LABEL] = str(index)
        if spec.idempotency_key:
            # Each batch is its own task, so each needs its own key.
            spec.idempotency_key = f"{split.template.idempotency_key}#{index}"
        out.append(spec)
    return out
