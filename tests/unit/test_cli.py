"""The `switchyard` command line: parsing, tables, error lines, health, exit codes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2_grpc

from switchyard import cli, commands, render
from switchyard.errors import FieldViolation, QuotaViolation, SwitchyardError
from switchyard.v1 import types_pb2
from tests.helpers import free_port


def parse(*argv: str, env: dict[str, str] | None = None) -> object:
    return cli.resolve_connection(cli.build_parser().parse_args(argv), env or {})


def test_connection_options_before_or_after_the_command() -> None:
    before = parse("--address", "h:1", "--json", "get", "task_1")
    after = parse("get", "task_1", "--address", "h:1", "--json", "--token", "tok")
    assert (before.address, before.json, before.token) == ("h:1", True, "")  # type: ignore[attr-defined]
    assert (after.address, after.json, after.token) == ("h:1", True, "tok")  # type: ignore[attr-defined]


def test_environment_fills_address_and_token() -> None:
    args = parse("get", "task_1", env={"SWITCHYARD_ADDRESS": "e:9", "SWITCHYARD_TOKEN": "sy_env"})
    assert (args.address, args.token, args.timeout) == ("e:9", "sy_env", 30.0)  # type: ignore[attr-defined]
    flag = parse("get", "x", "--token", "flag", env={"SWITCHYARD_TOKEN": "sy_env"})
    assert flag.token == "flag"  # type: ignore[attr-defined]
    assert parse("get", "x").address == "127.0.0.1:50051"  # type: ignore[attr-defined]


def test_submit_options_build_a_spec() -> None:
    args = cli.build_parser().parse_args(
        ["submit", "inference", "--model", "resnet_small", "--precision", "bf16", "--batch-size", "4",
         "--param", "seed=7", "--param", "mode=fast", "--label", "team=a", "--qos", "batch",
         "--latency-target-ms", "250", "--count", "3"]
    )  # fmt: skip
    request = commands.request_from_args(args)
    assert len(request.tasks) == 3
    spec = request.tasks[0]
    assert (spec.category, spec.model.name, spec.batch_size) == ("inference", "resnet_small", 4)
    assert spec.precision == types_pb2.PRECISION_BF16
    assert dict(spec.parameters) == {"seed": 7.0, "mode": "fast"}
    assert dict(spec.labels) == {"team": "a"}
    assert spec.qos.latency_target.ToMilliseconds() == 250


def test_submit_split() -> None:
    args = cli.build_parser().parse_args(
        ["submit", "create_synthetic_data", "--split-items", "24", "--split-batch", "8"]
    )
    request = commands.request_from_args(args)
    assert not request.tasks
    assert (request.split.total_items, request.split.batch_size) == (24, 8)


def test_submit_from_file(tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps({"tasks": [{"category": "inference", "model": {"name": "mlp"}, "batchSize": 8}]})
    )
    request = commands.request_from_args(cli.build_parser().parse_args(["submit", "--file", str(spec)]))
    assert request.tasks[0].model.name == "mlp"


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["submit"], "CATEGORY"),
        (["submit", "inference", "--precision", "fp7"], "unknown precision"),
        (["submit", "noop", "--param", "novalue"], "KEY=VALUE"),
        (["submit", "noop", "--split-items", "5"], "--split-batch"),
    ],
)
def test_bad_spec_options_are_usage_errors(argv: list[str], problem: str) -> None:
    with pytest.raises(commands.UsageError, match=problem):
        commands.request_from_args(cli.build_parser().parse_args(argv))


def test_table_rendering() -> None:
    text = render.table(("A", "LONGER"), [["x", 1], ["yyyy", None], ["z", 0.123456]])
    assert text.splitlines() == ["A     LONGER", "x     1", "yyyy  -", "z     0.123"]


def test_tasks_table_shows_state_worker_and_error() -> None:
    task = types_pb2.Task(id="task_1", job_id="job_1", category="inference", worker_id="cpu-1")
    task.state = types_pb2.TASK_STATE_FAILED
    task.eligibility = types_pb2.ELIGIBILITY_CPU_OR_GPU
    task.error.reason, task.error.message = "HANDLER_ERROR", "boom"
    task.submitted_at.FromMilliseconds(1_000)
    task.finished_at.FromMilliseconds(1_250)
    header, row = render.tasks_table([task]).splitlines()
    assert header.split() == list(render.TASK_HEADERS)
    assert row.split()[:8] == ["task_1", "job_1", "inference", "FAILED", "CPU_OR_GPU", "cpu-1", "0", "250ms"]
    assert row.endswith("HANDLER_ERROR: boom")


def test_error_lines() -> None:
    error = SwitchyardError(
        "INVALID_ARGUMENT",
        "invalid request: tasks[0].batch_size",
        reason="BAD_SPEC",
        request_id="req-9",
        field_violations=[FieldViolation("tasks[0].batch_size", "must not be negative")],
        quota_violations=[QuotaViolation("acme", "1000 queued")],
        retry_delay=1.5,
    )
    assert render.error_lines(error) == [
        "error: INVALID_ARGUMENT: invalid request: tasks[0].batch_size [BAD_SPEC] (request id req-9)",
        "  - tasks[0].batch_size: must not be negative",
        "  - quota acme: 1000 queued",
        "  retry after 1.5s",
    ]


def test_unreachable_classifier_prints_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    address = f"127.0.0.1:{free_port()}"
    assert cli.main(["get", "task_1", "--address", address, "--token", "t", "--timeout", "2"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: UNAVAILABLE")
    assert f"is the classifier running at {address}?" in err[0]


def test_missing_token_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SWITCHYARD_TOKEN", raising=False)
    assert cli.main(["get", "task_1"]) == 2
    assert "SWITCHYARD_TOKEN" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--help"], ["up", "--help"], ["submit", "--help"], ["health", "--help"]])
def test_help_works(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 0
    assert "usage: switchyard" in capsys.readouterr().out


def test_up_help_lists_the_mesh_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["up", "--help"])
    out = capsys.readouterr().out
    for option in ("--data-dir", "--database-url", "--cpu-workers", "--gpu-workers", "--slots", "--base-port",
                   "--internal-token"):  # fmt: skip
        assert option in out


@pytest.fixture
async def health_server() -> AsyncIterator[str]:
    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(None)


async def test_health_command(health_server: str, capsys: pytest.CaptureFixture[str]) -> None:
    down = f"127.0.0.1:{free_port()}"
    args = parse("health", health_server, down, "--timeout", "2")
    assert await commands.run(args) == 1  # type: ignore[arg-type]
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == [health_server, "SERVING"]
    assert lines[2].split()[:2] == [down, "UNREACHABLE:"]
    args = parse("health", health_server, "--json")
    assert await commands.run(args) == 0  # type: ignore[arg-type]
    assert json.loads(capsys.readouterr().out) == {health_server: "SERVING"}
