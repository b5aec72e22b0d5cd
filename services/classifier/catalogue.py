"""Load the category catalogue: defaults, the optional categories file, then the profile."""

from __future__ import annotations

from pathlib import Path

import yaml

from common.errors import ConfigError
from services.classifier.model import Category, CategoryProfile
from services.classifier.rules import Catalogue, build_catalogue, parse_categories


def read_categories_file(path: str) -> tuple[list[Category], list[str]]:
    """Parse the YAML (or JSON) categories file; every problem is returned, none raised."""
    if not path:
        return [], []
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        return [], [f"categories_file {path}: {exc}"]
    return parse_categories(data, source=f"categories_file {path}")


def load_catalogue(categories_file: str, profile: str) -> Catalogue:
    """The catalogue the service runs with; ConfigError lists every problem of the file."""
    extra, problems = read_categories_file(categories_file)
    if problems:
        raise ConfigError(problems)
    return build_catalogue(extra, CategoryProfile(profile))
