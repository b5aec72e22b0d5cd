"""Typed configuration: defaults, then an optional YAML/JSON file, then `SWITCHYARD_*` env.

Each service declares a frozen dataclass deriving from `ServerConfig`, with a `section`
name. A field `port` of section `scheduler` is read from, in rising precedence: its
default, key `port` of the file (top level or under `scheduler:`), `SWITCHYARD_PORT`
(shared keys only), and `SWITCHYARD_SCHEDULER_PORT`. Unknown keys and bad values are
collected and reported together by `ConfigError` before the service starts.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml

from common.errors import ConfigError

C = TypeVar("C", bound="ServerConfig")

SHARED_ENV_KEYS = frozenset({"internal_token", "log_level", "log_format", "host"})


@dataclasses.dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """Settings every service has."""

    section: ClassVar[str] = "server"

    host: str = "127.0.0.1"
    port: int = 0
    # Prometheus endpoint; -1 turns it off, 0 picks a free port.
    metrics_port: int = -1
    log_level: str = "INFO"
    log_format: str = "json"
    # Shared secret for service-to-service calls and for signing assignment tokens.
    internal_token: str = "switchyard-dev-internal-token"
    grace_period_s: float = 10.0

    def problems(self) -> list[str]:
        """Return every invalid setting; subclasses extend this."""
        out: list[str] = []
        if not 0 <= self.port <= 65535:
            out.append(f"port: {self.port} is not between 0 and 65535")
        if not -1 <= self.metrics_port <= 65535:
            out.append(f"metrics_port: {self.metrics_port} is not between -1 and 65535")
        if self.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            out.append(f"log_level: {self.log_level!r} is not DEBUG, INFO, WARNING or ERROR")
        if self.log_format not in {"json", "text"}:
            out.append(f"log_format: {self.log_format!r} is not json or text")
        if len(self.internal_token) < 16:
            out.append("internal_token: must be at least 16 characters")
        if self.grace_period_s < 0:
            out.append("grace_period_s: must not be negative")
        return out


def load_config(
    cls: type[C],
    *,
    file: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> C:
    """Build and validate a config; raise ConfigError listing every problem."""
    env = dict(env or {})
    problems: list[str] = []
    values: dict[str, Any] = {}
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    file = file or env.get("SWITCHYARD_CONFIG") or None
    raw: dict[str, Any] = dict(_read_file(Path(file), cls.section, problems)) if file else {}
    raw.update(_read_env(cls.section, fields, env))
    raw.update(overrides or {})
    for key, value in raw.items():
        if key not in fields:
            problems.append(f"{key}: unknown setting for {cls.section}")
            continue
        try:
            values[key] = _coerce(value, hints[key])
        except (TypeError, ValueError) as exc:
            problems.append(f"{key}: {exc}")
    if problems:
        raise ConfigError(problems)
    config = cls(**values)
    problems = config.problems()
    if problems:
        raise ConfigError(problems)
    return config


def _read_file(path: Path, section: str, problems: list[str]) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) if path.suffix != ".json" else json.loads(path.read_text())
    except (OSError, yaml.YAMLError, json.JSONDecodeError) as exc:
        problems.append(f"config file {path}: {exc}")
        return {}
    if data is None:
        return {}
    if not isinstance(data, dict):
        problems.append(f"config file {path}: top level must be a mapping")
        return {}
    if isinstance(data.get(section), dict):
        return dict(data[section])
    return data


def _read_env(section: str, fields: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in fields:
        shared = f"SWITCHYARD_{name.upper()}"
        specific = f"SWITCHYARD_{section.upper()}_{name.upper()}"
        if name in SHARED_ENV_KEYS and shared in env:
            out[name] = env[shared]
        if specific in env:
            out[name] = env[specific]
    return out


def _coerce(value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None or value == "":
            return None
        return _coerce(value, args[0])
    if origin is tuple:
        items = value.split(",") if isinstance(value, str) else list(value)
        (inner, *_rest) = typing.get_args(hint)
        return tuple(_coerce(i.strip() if isinstance(i, str) else i, inner) for i in items if i != "")
    if hint is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in {"1", "true", "yes", "on"}:
            return True
        if str(value).lower() in {"0", "false", "no", "off"}:
            return False
        raise ValueError(f"{value!r} is not a boolean")
    if hint in (int, float):
        if isinstance(value, bool):
            raise ValueError(f"{value!r} is not a number")
        try:
            return hint(value)
        except (TypeError, ValueError):
            raise ValueError(f"{value!r} is not {'an integer' if hint is int else 'a number'}") from None
    if hint is str:
        if not isinstance(value, str | int | float):
            raise ValueError(f"{value!r} is not a string")
        return str(value)
    if hint is Path:
        return Path(value)
    raise TypeError(f"unsupported config type {hint!r}")
