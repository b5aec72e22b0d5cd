"""Classification rules: catalogue, narrowing, the local profile, categories files, splitting."""

from __future__ import annotations

import pytest

from services.classifier.catalogue import load_catalogue, read_categories_file
from services.classifier.config import ClassifierConfig
from services.classifier.intake import split_specs
from services.classifier.model import (
    Category,
    CategoryProfile,
    Classification,
    Eligibility,
    Precision,
    SpecTraits,
)
from services.classifier.rules import (
    build_catalogue,
    classify,
    default_catalogue,
    localised_names,
    parse_categories,
    parse_eligibility,
    split_count,
    split_sizes,
)
from switchyard.v1 import types_pb2

CPU, GPU, ANY = Eligibility.CPU_ONLY, Eligibility.GPU_ONLY, Eligibility.CPU_OR_GPU


@pytest.mark.parametrize(
    ("category", "group"),
    [
        ("generate_source_assets", ANY),
        ("ingest_source_assets", CPU),
        ("identify_variation_parameters", ANY),
        ("vary_variation_parameters", ANY),
        ("create_synthetic_data", GPU),
        ("inference", ANY),
        ("preprocess", ANY),
        ("training_step", ANY),
        ("noop", ANY),
    ],
)
def test_category_groups(category: str, group: Eligibility) -> None:
    result = classify(SpecTraits(category), default_catalogue())
    assert result == Classification(category, group, result.priority_class, f"category:{category}")  # type: ignore[union-attr]


def test_create_synthetic_data_ranks_first_and_noop_last() -> None:
    classes = {c.name: c.priority_class for c in default_catalogue().categories.values()}
    assert max(classes, key=lambda n: classes[n]) == "create_synthetic_data"
    assert min(classes, key=lambda n: classes[n]) == "noop"
    assert len(set(classes.values())) > 1


@pytest.mark.parametrize(
    ("traits", "group", "rule"),
    [
        (SpecTraits("inference", Precision.FP16), GPU, "constraint:precision=fp16"),
        (SpecTraits("inference", gpu_count=0.5), GPU, "constraint:gpu_count"),
        (SpecTraits("inference", gpu_memory_bytes=1 << 30), GPU, "constraint:gpu_memory_bytes"),
        (SpecTraits("inference", Precision.INT8), CPU, "constraint:precision=int8"),
        (SpecTraits("inference", Precision.FP32), ANY, "category:inference"),
        (SpecTraits("inference", Precision.BF16), ANY, "category:inference"),
        (SpecTraits("create_synthetic_data", Precision.FP16), GPU, "category:create_synthetic_data"),
        (SpecTraits("ingest_source_assets", Precision.FP32), CPU, "category:ingest_source_assets"),
        (SpecTraits("ingest_source_assets", Precision.INT8), CPU, "category:ingest_source_assets"),
    ],
)
def test_narrowing(traits: SpecTraits, group: Eligibility, rule: str) -> None:
    result = classify(traits, default_catalogue())
    assert isinstance(result, Classification)
    assert (result.eligibility, result.rule) == (group, rule)


@pytest.mark.parametrize(
    ("traits", "fields"),
    [
        (SpecTraits("ingest_source_assets", Precision.FP16), ["precision"]),
        (SpecTraits("ingest_source_assets", gpu_count=1), ["resources.gpu_count"]),
        (
            SpecTraits("ingest_source_assets", gpu_count=1, gpu_memory_bytes=10),
            ["resources.gpu_count", "resources.gpu_memory_bytes"],
        ),
        (SpecTraits("create_synthetic_data", Precision.INT8), ["precision"]),
        (SpecTraits("inference", Precision.INT8, gpu_count=1), ["precision"]),
        (SpecTraits("no_such_category"), ["category"]),
    ],
)
def test_contradictions_name_the_field(traits: SpecTraits, fields: list[str]) -> None:
    result = classify(traits, default_catalogue())
    assert isinstance(result, list)
    assert [c.field for c in result] == fields
    assert all(c.description for c in result)


def test_local_profile_turns_gpu_only_into_either() -> None:
    local = build_catalogue(profile=CategoryProfile.LOCAL)
    result = classify(SpecTraits("create_synthetic_data"), local)
    assert isinstance(result, Classification)
    assert (result.eligibility, result.rule) == (ANY, "profile:local")
    assert localised_names(local) == ["create_synthetic_data"]
    ingest = classify(SpecTraits("ingest_source_assets"), local)
    assert isinstance(ingest, Classification) and ingest.eligibility is CPU
    # An explicit constraint still decides after the profile.
    fp16 = classify(SpecTraits("create_synthetic_data", Precision.FP16), local)
    assert isinstance(fp16, Classification) and fp16.rule == "constraint:precision=fp16"
    assert localised_names(default_catalogue()) == []


def test_categories_file_adds_and_overrides() -> None:
    extra, problems = parse_categories(
        {
            "categories": [
                {"name": "render_video", "eligibility": "gpu_only", "priority_class": 90},
                {"name": "inference", "eligibility": "ELIGIBILITY_CPU_ONLY", "priority_class": 10},
            ]
        }
    )
    assert problems == []
    catalogue = build_catalogue(extra)
    assert catalogue.get("render_video") == Category("render_video", GPU, 90)
    assert catalogue.get("inference") == Category("inference", CPU, 10)
    assert catalogue.get("noop") is not None


def test_categories_file_lists_every_problem_at_once() -> None:
    _, problems = parse_categories(
        {
            "categories": [
                {"name": "a", "eligibility": "CPU_ONLY"},
                {"name": "a", "eligibility": "GPU_ONLY"},
                {"name": "b", "eligibility": "TPU_ONLY"},
                {"name": "c", "eligibility": "CPU_ONLY", "priority_class": "high", "colour": 1},
            ]
        }
    )
    text = "\n".join(problems)
    assert "duplicate category name 'a'" in text
    assert "unknown eligibility 'TPU_ONLY'" in text
    assert "priority_class 'high'" in text and "unknown key 'colour'" in text
    assert len(problems) == 4


def test_categories_file_problems_stop_the_config(tmp_path: pytest.TempPathFactory) -> None:
    path = tmp_path / "cats.yaml"  # type: ignore[operator]
    path.write_text("categories:\n  - {name: x, eligibility: CPU_ONLY}\n  - {name: x, eligibility: QPU}\n")
    problems = ClassifierConfig(categories_file=str(path)).problems()
    assert len(problems) == 2
    assert any("duplicate" in p for p in problems) and any("QPU" in p for p in problems)
    with pytest.raises(Exception, match="duplicate"):
        load_catalogue(str(path), "default")
    assert read_categories_file("")[1] == []
    assert "No such file" in read_categories_file(str(tmp_path / "missing.yaml"))[1][0]  # type: ignore[operator]


@pytest.mark.parametrize("value", ["CPU_ONLY", "cpu_only", "ELIGIBILITY_CPU_ONLY", " Cpu_Only "])
def test_parse_eligibility(value: str) -> None:
    assert parse_eligibility(value) is CPU


@pytest.mark.parametrize(
    ("total", "batch", "sizes"),
    [(10, 3, [3, 3, 3, 1]), (9, 3, [3, 3, 3]), (1, 100, [1]), (5, 1, [1, 1, 1, 1, 1])],
)
def test_split_arithmetic(total: int, batch: int, sizes: list[int]) -> None:
    assert split_sizes(total, batch) == sizes
    assert split_count(total, batch) == len(sizes)


@pytest.mark.parametrize(("total", "batch"), [(0, 3), (10, 0), (-1, 2)])
def test_split_needs_positive_numbers(total: int, batch: int) -> None:
    with pytest.raises(ValueError):
        split_sizes(total, batch)
    assert split_count(total, batch) == 0


def test_split_count_of_huge_requests_does_not_materialise() -> None:
    assert split_count(10**15, 7) == -(-(10**15) // 7)


def test_split_specs_copy_the_template() -> None:
    template = types_pb2.TaskSpec(category="create_synthetic_data", idempotency_key="k", labels={"a": "b"})
    specs = split_specs(types_pb2.SplitRequest(template=template, total_items=10, batch_size=3))
    assert [s.item_count for s in specs] == [3, 3, 3, 1]
    assert {s.batch_size for s in specs} == {3}
    assert [s.labels["split_index"] for s in specs] == ["0", "1", "2", "3"]
    assert all(s.labels["a"] == "b" and s.category == template.category for s in specs)
    assert len({s.idempotency_key for s in specs}) == 4
