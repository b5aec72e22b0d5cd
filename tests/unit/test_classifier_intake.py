"""Intake: accepted specs are checked once per content; tasks are built from per-verdict templates."""

from __future__ import annotations

import re
from typing import Any

import pytest

from common.auth import Principal
from common.errors import InvalidArgument
from common.ids import new_id, new_ids
from services.classifier import intake as intake_module
from services.classifier.intake import MEMO_SPEC_BYTES, Intake
from services.classifier.rules import default_catalogue
from services.classifier.validation import Limits
from switchyard.v1 import classifier_pb2, types_pb2

ALICE = Principal(tenant="acme", user="alice")
ID_FORMAT = re.compile(r"^task_[0-9a-f]{12}_[0-9a-f]{16}$")


def count_validations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Paths of the specs `validate_spec` sees from now on."""
    seen: list[str] = []
    real = intake_module.validate_spec

    def counting(spec: types_pb2.TaskSpec, path: str, *args: Any) -> None:
        seen.append(path)
        real(spec, path, *args)

    monkeypatch.setattr(intake_module, "validate_spec", counting)
    return seen


def submit(*specs: types_pb2.TaskSpec) -> classifier_pb2.SubmitTasksRequest:
    return classifier_pb2.SubmitTasksRequest(tasks=list(specs))


def test_identical_specs_are_validated_once_and_each_becomes_a_task(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = count_validations(monkeypatch)
    noop = types_pb2.TaskSpec(category="noop", labels={"a": "1"})
    gpu = types_pb2.TaskSpec(category="inference", precision=types_pb2.PRECISION_FP16)
    plan = Intake(default_catalogue(), Limits()).plan(submit(*[noop] * 300, gpu, noop), ALICE)
    assert seen == ["tasks[0]", "tasks[300]"]
    assert len(plan.tasks) == 302
    assert len({t.id for t in plan.tasks}) == 302
    assert [t.spec for t in plan.tasks] == [noop] * 300 + [gpu, noop]
    assert {t.category for t in plan.tasks} == {"noop", "inference"}
    assert plan.tasks[300].eligibility == types_pb2.ELIGIBILITY_GPU_ONLY
    assert plan.tasks[300].classification_rule == "constraint:precision=fp16"
    assert plan.tasks[301].eligibility == types_pb2.ELIGIBILITY_CPU_OR_GPU
    assert all(t.job_id == plan.job_id and t.tenant == "acme" and t.user == "alice" for t in plan.tasks)
    assert len({t.submitted_at.SerializeToString() for t in plan.tasks}) == 1


def test_a_later_submit_reuses_the_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = count_validations(monkeypatch)
    intake = Intake(default_catalogue(), Limits())
    spec = types_pb2.TaskSpec(category="preprocess")
    intake.plan(submit(spec), ALICE)
    [again] = intake.plan(submit(spec), ALICE).tasks
    [classified] = intake.classify([spec])
    assert seen == ["tasks[0]"]
    assert (again.category, classified.category) == ("preprocess", "preprocess")


def test_identical_invalid_specs_each_name_their_own_fields() -> None:
    intake = Intake(default_catalogue(), Limits())
    bad = types_pb2.TaskSpec(category="noop", batch_size=-1)
    conflict = types_pb2.TaskSpec(category="ingest_source_assets", precision=types_pb2.PRECISION_FP16)
    for _ in range(2):  # rejected specs are never remembered: the second round says the same
        with pytest.raises(InvalidArgument) as exc:
            intake.plan(submit(bad, types_pb2.TaskSpec(category="noop"), bad, conflict, conflict), ALICE)
        assert [v.field for v in exc.value.violations] == [
            "tasks[0].batch_size",
            "tasks[2].batch_size",
            "tasks[3].precision",
            "tasks[4].precision",
        ]


def test_specs_that_differ_anywhere_are_checked_on_their_own() -> None:
    intake = Intake(default_catalogue(), Limits())
    good = types_pb2.TaskSpec(category="noop", labels={"k": "v"})
    bad = types_pb2.TaskSpec(category="noop", labels={"k": "v" * 300})
    intake.plan(submit(good), ALICE)
    with pytest.raises(InvalidArgument) as exc:
        intake.plan(submit(good, bad), ALICE)
    assert [v.field for v in exc.value.violations] == ["tasks[1].labels['k']"]


def test_the_memo_is_bounded_and_skips_large_specs() -> None:
    intake = Intake(default_catalogue(), Limits(), memo_entries=3)
    specs = [types_pb2.TaskSpec(category="noop", item_count=i) for i in range(10)]
    plan = intake.plan(submit(*specs), ALICE)
    assert [t.spec.item_count for t in plan.tasks] == list(range(10))
    assert 1 <= intake.remembered <= 3
    large = Intake(default_catalogue(), Limits())
    large.plan(submit(types_pb2.TaskSpec(category="noop", data=b"x" * (MEMO_SPEC_BYTES + 1))), ALICE)
    assert large.remembered == 0


def test_new_task_ids_look_like_new_id() -> None:
    ids = new_ids("task", 1000)
    assert len(set(ids)) == 1000
    assert all(ID_FORMAT.match(i) for i in ids)
    assert ID_FORMAT.match(new_id("task"))
    assert new_ids("task", 0) == []
