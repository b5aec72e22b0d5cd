"""Typed config: defaults, file, environment, validation that lists every problem."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from common.config import load_config
from common.errors import ConfigError
from services.scheduler.config import SchedulerConfig


def test_defaults_then_file_then_environment(tmp_path: Path):
    assert load_config(SchedulerConfig).port == 50052
    cfg_file = tmp_path / "switchyard.yaml"
    cfg_file.write_text("scheduler:\n  port: 6000\n  heartbeat_timeout_s: 12\n")
    from_file = load_config(SchedulerConfig, file=cfg_file)
    assert (from_file.port, from_file.heartbeat_timeout_s) == (6000, 12.0)
    env = {
        "SWITCHYARD_SCHEDULER_PORT": "7000",
        "SWITCHYARD_LOG_LEVEL": "debug",
        "SWITCHYARD_CONFIG": str(cfg_file),
    }
    merged = load_config(SchedulerConfig, env=env)
    assert (merged.port, merged.heartbeat_timeout_s, merged.log_level) == (7000, 12.0, "debug")


def test_every_problem_is_reported_at_once(tmp_path: Path):
    cfg_file = tmp_path / "bad.yaml"
    cfg_file.write_text("port: 70000\nno_such_key: 1\ncycle_interval_s: -1\n")
    with pytest.raises(ConfigError) as err:
        load_config(SchedulerConfig, file=cfg_file, env={"SWITCHYARD_SCHEDULER_MAX_ATTEMPTS": "many"})
    text = str(err.value)
    assert "no_such_key: unknown setting" in text and "max_attempts" in text
    with pytest.raises(ConfigError) as err:
        load_config(
            SchedulerConfig, overrides={"port": 70000, "cycle_interval_s": -1, "internal_token": "short"}
        )
    assert len(err.value.problems) == 3


def test_a_service_with_bad_config_stops_with_a_clear_message():
    env = {"SWITCHYARD_SCHEDULER_PORT": "not-a-port", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-m", "services.scheduler"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0
    assert (
        "scheduler: invalid configuration" in proc.stderr
        and "port: 'not-a-port' is not an integer" in proc.stderr
    )
    assert "Traceback" not in proc.stderr
