"""Submit validation: every problem of a request comes back in one InvalidArgument."""

from __future__ import annotations

import pytest
from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2

from common.auth import Principal
from common.errors import InvalidArgument, ResourceExhausted
from services.classifier.intake import Intake
from services.classifier.model import Eligibility
from services.classifier.rules import default_catalogue
from services.classifier.validation import MAX_PARAMETER_DEPTH, Limits
from switchyard.v1 import classifier_pb2, types_pb2

ALICE = Principal(tenant="acme", user="alice")


def intake(**limits: int) -> Intake:
    return Intake(default_catalogue(), Limits(**limits))


def fields_of(exc: pytest.ExceptionInfo[InvalidArgument]) -> list[str]:
    return [v.field for v in exc.value.violations]


def test_one_error_names_every_bad_field() -> None:
    bad = types_pb2.TaskSpec(
        category="inference",
        batch_size=-1,
        item_count=-5,
        precision=types_pb2.PRECISION_INT8,
        min_precision=types_pb2.PRECISION_FP32,
        resources=types_pb2.ResourceRequest(cpu_cores=-2, memory_bytes=-1, gpu_memory_bytes=-3),
        depends_on=["task_1", ""],
        labels={f"k{i}": "v" for i in range(65)},
        idempotency_key="k" * 129,
    )
    request = classifier_pb2.SubmitTasksRequest(
        tasks=[types_pb2.TaskSpec(category="noop"), types_pb2.TaskSpec(category="warp_drive"), bad]
    )
    with pytest.raises(InvalidArgument) as exc:
        intake().plan(request, ALICE)
    assert fields_of(exc) == [
        "tasks[1].category",
        "tasks[2].batch_size",
        "tasks[2].item_count",
        "tasks[2].resources.cpu_cores",
        "tasks[2].resources.memory_bytes",
        "tasks[2].resources.gpu_memory_bytes",
        "tasks[2].min_precision",
        "tasks[2].depends_on[1]",
        "tasks[2].labels",
        "tasks[2].idempotency_key",
    ]
    assert "warp_drive" in exc.value.violations[0].description
    # The description names the known categories, so the caller can fix it.
    assert "create_synthetic_data" in exc.value.violations[0].description


def test_unknown_enums_and_contradictions() -> None:
    request = classifier_pb2.SubmitTasksRequest(
        tasks=[
            types_pb2.TaskSpec(category="inference", precision=99),  # type: ignore[arg-type]
            types_pb2.TaskSpec(category="ingest_source_assets", precision=types_pb2.PRECISION_FP16),
            types_pb2.TaskSpec(category="noop", qos=types_pb2.Qos(qos_class=42)),  # type: ignore[arg-type]
        ]
    )
    with pytest.raises(InvalidArgument) as exc:
        intake().plan(request, ALICE)
    assert fields_of(exc) == ["tasks[0].precision", "tasks[1].precision", "tasks[2].qos.qos_class"]
    assert "needs a GPU" in exc.value.violations[1].description


def test_split_problems_use_split_paths() -> None:
    request = classifier_pb2.SubmitTasksRequest(
        split=types_pb2.SplitRequest(template=types_pb2.TaskSpec(category=""), total_items=0, batch_size=-1)
    )
    with pytest.raises(InvalidArgument) as exc:
        intake().plan(request, ALICE)
    assert fields_of(exc) == ["split.total_items", "split.batch_size", "split.template.category"]


def test_empty_submit_is_invalid() -> None:
    with pytest.raises(InvalidArgument) as exc:
        intake().plan(classifier_pb2.SubmitTasksRequest(), ALICE)
    assert fields_of(exc) == ["tasks"]


def test_too_many_tasks_is_resource_exhausted_before_validation() -> None:
    split = types_pb2.SplitRequest(
        template=types_pb2.TaskSpec(category="noop"), total_items=10**12, batch_size=1
    )
    with pytest.raises(ResourceExhausted) as exc:
        intake(max_tasks_per_submit=100).plan(classifier_pb2.SubmitTasksRequest(split=split), ALICE)
    assert exc.value.violations[0].subject == "tasks"


def test_plan_fills_classified_tasks_under_one_job() -> None:
    split = types_pb2.SplitRequest(
        template=types_pb2.TaskSpec(category="create_synthetic_data"), total_items=10, batch_size=3
    )
    request = classifier_pb2.SubmitTasksRequest(
        tasks=[types_pb2.TaskSpec(category="ingest_source_assets")], split=split
    )
    plan = intake().plan(request, ALICE)
    assert len(plan.tasks) == 5
    assert {t.job_id for t in plan.tasks} == {plan.job_id}
    assert len({t.id for t in plan.tasks}) == 5
    assert all(t.tenant == "acme" and t.user == "alice" and t.HasField("submitted_at") for t in plan.tasks)
    first, *batches = plan.tasks
    assert (first.eligibility, first.classification_rule) == (
        types_pb2.ELIGIBILITY_CPU_ONLY,
        "category:ingest_source_assets",
    )
    assert [t.spec.item_count for t in batches] == [3, 3, 3, 1]
    assert {t.eligibility for t in batches} == {types_pb2.ELIGIBILITY_GPU_ONLY}
    assert batches[0].priority_class > first.priority_class


def test_classify_validates_and_returns_one_classification_per_spec() -> None:
    specs = [types_pb2.TaskSpec(category="inference", precision=types_pb2.PRECISION_INT8)]
    [result] = intake().classify(specs)
    assert (result.eligibility, result.rule) == (Eligibility.CPU_ONLY, "constraint:precision=int8")
    with pytest.raises(InvalidArgument):
        intake().classify([types_pb2.TaskSpec(category="inference", batch_size=-1)])


def nested(depth: int) -> struct_pb2.Struct:
    top = struct_pb2.Struct()
    level = top
    for _ in range(depth):
        level = level.fields["a"].struct_value
    level.fields["leaf"].number_value = 1
    return top


def test_oversized_payloads_are_resource_exhausted_listing_each() -> None:
    big_params = struct_pb2.Struct()
    big_params.fields["blob"].string_value = "p" * 200
    request = classifier_pb2.SubmitTasksRequest(
        tasks=[
            types_pb2.TaskSpec(category="noop", data=b"x" * 11),
            types_pb2.TaskSpec(category="nope", parameters=big_params),
        ]
    )
    with pytest.raises(ResourceExhausted) as exc:
        intake(max_task_data_bytes=10, max_task_parameters_bytes=100).plan(request, ALICE)
    assert [v.subject for v in exc.value.violations] == ["tasks[0].data", "tasks[1].parameters"]
    assert exc.value.reason == "SUBMIT_TOO_LARGE"


def test_a_split_counts_its_expanded_size() -> None:
    split = types_pb2.SplitRequest(
        template=types_pb2.TaskSpec(category="noop", data=b"x" * 1000), total_items=2000, batch_size=1
    )
    request = classifier_pb2.SubmitTasksRequest(split=split)
    with pytest.raises(ResourceExhausted) as exc:
        intake(max_submit_bytes=1_000_000).plan(request, ALICE)
    assert [v.subject for v in exc.value.violations] == ["submit"]
    assert len(intake(max_submit_bytes=3_000_000).plan(request, ALICE).tasks) == 2000


def test_parameters_times_and_references() -> None:
    bad_numbers = struct_pb2.Struct()
    bad_numbers.fields["x"].list_value.values.add().number_value = float("nan")
    huge = duration_pb2.Duration(seconds=10**12)
    request = classifier_pb2.SubmitTasksRequest(
        tasks=[
            types_pb2.TaskSpec(category="noop", parameters=nested(MAX_PARAMETER_DEPTH)),
            types_pb2.TaskSpec(category="noop", parameters=bad_numbers, timeout=huge),
            types_pb2.TaskSpec(
                category="noop",
                qos=types_pb2.Qos(deadline=timestamp_pb2.Timestamp(seconds=-(10**15))),
                depends_on=["t"] * 1001,
                model=types_pb2.ModelRef(name="m" * 129),
            ),
            types_pb2.TaskSpec(category="noop", parameters=nested(MAX_PARAMETER_DEPTH - 2)),
        ]
    )
    with pytest.raises(InvalidArgument) as exc:
        intake().plan(request, ALICE)
    assert fields_of(exc) == [
        "tasks[0].parameters",
        "tasks[1].timeout",
        "tasks[1].parameters",
        "tasks[2].model",
        "tasks[2].qos.deadline",
        "tasks[2].depends_on",
    ]


def test_split_idempotency_keys_must_fit_with_their_suffix() -> None:
    template = types_pb2.TaskSpec(category="noop", idempotency_key="k" * 126)
    request = classifier_pb2.SubmitTasksRequest(
        split=types_pb2.SplitRequest(template=template, total_items=20, batch_size=1)
    )
    with pytest.raises(InvalidArgument) as exc:
        intake().plan(request, ALICE)
    assert fields_of(exc) == ["split.template.idempotency_key"]
    template.idempotency_key = "k" * 125
    plan = intake().plan(
        classifier_pb2.SubmitTasksRequest(
            split=types_pb2.SplitRequest(template=template, total_items=20, batch_size=1)
        ),
        ALICE,
    )
    assert plan.tasks[-1].spec.idempotency_key == "k" * 125 + "#19"
