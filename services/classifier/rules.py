"""Pure classification rules: the category catalogue, narrowing, profiles and splitting.

No I/O here: `catalogue.py` reads the optional categories file and hands its parsed
content to `parse_categories`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from services.classifier.model import (
    Category,
    CategoryProfile,
    Classification,
    Conflict,
    Eligibility,
    Precision,
    SpecTraits,
)

CATEGORY_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
PRIORITY_RANGE = (0, 1000)
LOCAL_RULE = "profile:local"
GPU_PRECISIONS = {Precision.FP16: "fp16"}
CPU_PRECISIONS = {Precision.INT8: "int8"}

_C, _G, _E = Eligibility.CPU_ONLY, Eligibility.GPU_ONLY, Eligibility.CPU_OR_GPU

# The seed's categories (S1) plus the ML ones; create_synthetic_data ranks first (claim 2).
DEFAULT_CATEGORIES: tuple[Category, ...] = (
    Category("generate_source_assets", _E, 50),
    Category("ingest_source_assets", _C, 50),
    Category("identify_variation_parameters", _E, 50),
    Category("vary_variation_parameters", _E, 60),
    Category("create_synthetic_data", _G, 100),
    Category("inference", _E, 70),
    Category("preprocess", _E, 40),
    Category("training_step", _E, 30),
    Category("noop", _E, 0),
)


@dataclass(frozen=True)
class Catalogue:
    categories: Mapping[str, Category]

    def get(self, name: str) -> Category | None:
        return self.categories.get(name)

    def names(self) -> list[str]:
        return sorted(self.categories)


def default_catalogue() -> Catalogue:
    return Catalogue({c.name: c for c in DEFAULT_CATEGORIES})


def build_catalogue(
    extra: Iterable[Category] = (), profile: CategoryProfile = CategoryProfile.DEFAULT
) -> Catalogue:
    """The defaults, overridden or extended by `extra`, then adjusted for the profile."""
    merged = {c.name: c for c in DEFAULT_CATEGORIES}
    merged.update({c.name: c for c in extra})
    if profile is CategoryProfile.LOCAL:
        merged = {name: _localise(c) for name, c in merged.items()}
    return Catalogue(merged)


def _localise(category: Category) -> Category:
    # A machine without a GPU still runs GPU categories, on its CPU (DESIGN §5).
    if category.eligibility is Eligibility.GPU_ONLY:
        return replace(category, eligibility=Eligibility.CPU_OR_GPU, rule=LOCAL_RULE)
    return category


def localised_names(catalogue: Catalogue) -> list[str]:
    return sorted(c.name for c in catalogue.categories.values() if c.rule == LOCAL_RULE)


def parse_eligibility(value: object) -> Eligibility | None:
    """Accepts "GPU_ONLY", "gpu_only" or "ELIGIBILITY_GPU_ONLY"."""
    if not isinstance(value, str):
        return None
    text = value.strip().upper().removeprefix("ELIGIBILITY_")
    return Eligibility.__members__.get(text)


def parse_categories(data: Any, source: str = "categories file") -> tuple[list[Category], list[str]]:
    """Parse `{categories: [{name, eligibility, priority_class}, ...]}` (or the bare list).

    Returns the categories and every problem found, so that one message lists them all.
    """
    entries = data.get("categories") if isinstance(data, dict) else data
    if data is None or entries is None:
        return [], []
    if not isinstance(entries, list):
        return [], [f"{source}: `categories` must be a list of {{name, eligibility, priority_class}}"]
    problems: list[str] = []
    out: list[Category] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        where = f"{source}: categories[{i}]"
        name = entry.get("name") if isinstance(entry, dict) else None
        if isinstance(name, str):
            if name in seen:
                problems.append(f"{where}: duplicate category name {name!r}")
            seen.add(name)
        category = _parse_entry(entry, where, problems)
        if category is not None:
            out.append(category)
    return out, problems


def _parse_entry(entry: Any, where: str, problems: list[str]) -> Category | None:
    if not isinstance(entry, dict):
        problems.append(f"{where}: must be a mapping with name, eligibility and priority_class")
        return None
    before = len(problems)
    for key in sorted(set(entry) - {"name", "eligibility", "priority_class"}):
        problems.append(f"{where}: unknown key {key!r}")
    name = entry.get("name")
    if not isinstance(name, str) or not CATEGORY_NAME_RE.match(name):
        problems.append(f"{where}: name {name!r} must match {CATEGORY_NAME_RE.pattern}")
    eligibility = parse_eligibility(entry.get("eligibility"))
    if eligibility is None:
        given = entry.get("eligibility")
        problems.append(f"{where}: unknown eligibility {given!r} (use CPU_ONLY, GPU_ONLY or CPU_OR_GPU)")
    priority = entry.get("priority_class", 50)
    low, high = PRIORITY_RANGE
    if isinstance(priority, bool) or not isinstance(priority, int) or not low <= priority <= high:
        problems.append(f"{where}: priority_class {priority!r} must be an integer from {low} to {high}")
    if len(problems) > before or eligibility is None or not isinstance(name, str):
        return None
    return Category(name, eligibility, priority)


def classify(traits: SpecTraits, catalogue: Catalogue) -> Classification | list[Conflict]:
    """Category → eligibility group, narrowed by the spec's constraints.

    Needing a GPU (fp16, gpu_count, gpu_memory_bytes) narrows to GPU_ONLY; int8 narrows to
    CPU_ONLY. A narrowing that contradicts the group is a conflict naming the field.
    """
    category = catalogue.get(traits.category)
    if category is None:
        return [Conflict("category", f"unknown category {traits.category!r}")]
    eligibility, rule = category.eligibility, category.decided_by
    conflicts: list[Conflict] = []
    for field, reason, wanted in _constraints(traits):
        if eligibility is wanted:
            continue
        if eligibility is Eligibility.CPU_OR_GPU:
            eligibility, rule = wanted, reason
            continue
        conflicts.append(Conflict(field, _contradiction(reason, wanted, eligibility, rule)))
    if conflicts:
        return conflicts
    return Classification(category.name, eligibility, category.priority_class, rule)


def _constraints(traits: SpecTraits) -> list[tuple[str, str, Eligibility]]:
    found: list[tuple[str, str, Eligibility]] = []
    if traits.precision in GPU_PRECISIONS:
        found.append(("precision", f"constraint:precision={GPU_PRECISIONS[traits.precision]}", _G))
    if traits.gpu_count > 0:
        found.append(("resources.gpu_count", "constraint:gpu_count", _G))
    if traits.gpu_memory_bytes > 0:
        found.append(("resources.gpu_memory_bytes", "constraint:gpu_memory_bytes", _G))
    if traits.precision in CPU_PRECISIONS:
        found.append(("precision", f"constraint:precision={CPU_PRECISIONS[traits.precision]}", _C))
    return found


def _contradiction(reason: str, wanted: Eligibility, current: Eligibility, rule: str) -> str:
    need = "a GPU" if wanted is Eligibility.GPU_ONLY else "a CPU"
    return f"{reason.removeprefix('constraint:')} needs {need}, but the task is {current.value} ({rule})"


def split_sizes(total_items: int, batch_size: int) -> list[int]:
    """Item counts of the ceil(N/b) tasks that cover N items in batches of b."""
    if total_items <= 0 or batch_size <= 0:
        raise ValueError("total_items and batch_size must be positive")
    full, rest = divmod(total_items, batch_size)
    return [batch_size] * full + ([rest] if rest else [])


def split_count(total_items: int, batch_size: int) -> int:
    return -(-total_items // batch_size) if total_items > 0 and batch_size > 0 else 0
