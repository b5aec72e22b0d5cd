"""From a submit request to classified tasks: validate, classify, split, mint ids.

No I/O: the servicer sends the planned tasks to the scheduler in one EnqueueTasks call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from common.auth import Principal
from common.errors import Violations
from common.ids import new_id
from common.timeutil import utcnow
from services.classifier.convert import task_to_proto, traits_from_proto
from services.classifier.model import Classification
from services.classifier.rules import Catalogue, classify, split_sizes
from services.classifier.validation import (
    Context,
    Limits,
    check_submit_size,
    validate_spec,
    validate_split,
)
from switchyard.v1 import classifier_pb2, types_pb2

SPLIT_LABEL = "split_index"


@dataclass(frozen=True)
class Plan:
    job_id: str
    tasks: list[types_pb2.Task]


class Intake:
    def __init__(self, catalogue: Catalogue, limits: Limits, clock: Callable[[], datetime] = utcnow) -> None:
        self.ctx = Context(catalogue, limits)
        self.clock = clock

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
        job_id, now = new_id("job"), self.clock()
        tasks = [
            task_to_proto(
                task_id=new_id("task"),
                job_id=job_id,
                tenant=principal.tenant,
                user=principal.user,
                spec=spec,
                classification=result,
                submitted_at=now,
            )
            for spec, result in pairs
            if result is not None
        ]
        return Plan(job_id, tasks)

    def _checked(self, spec: types_pb2.TaskSpec, path: str, v: Violations) -> Classification | None:
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
