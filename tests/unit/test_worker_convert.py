"""Worker proto <-> domain conversions, config validation and /proc telemetry parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

from common.config import load_config
from common.errors import ConfigError
from common.timeutil import to_timestamp
from services.worker.config import WorkerConfig
from services.worker.convert import (
    assignment_from_proto,
    metrics_to_proto,
    outcome_to_proto,
    precision_enum,
    precision_name,
    struct_from_dict,
    worker_info_to_proto,
)
from services.worker.device import CPU_PRECISIONS, cpu_model, detect_device
from services.worker.model import (
    Assignment,
    DeviceInfo,
    HandlerResult,
    Outcome,
    TaskFailure,
    TaskInput,
    TaskReport,
    TelemetrySample,
    WorkerStatus,
)
from services.worker.telemetry import TelemetrySampler, read_cpu_times, read_meminfo
from switchyard.v1 import scheduler_pb2, types_pb2

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def proto_assignment(**spec: Any) -> scheduler_pb2.Assignment:
    task = types_pb2.Task(
        id="task_1",
        tenant="acme",
        attempt=2,
        category="inference",
        spec=types_pb2.TaskSpec(category="inference", **spec),  # type: ignore[arg-type]
        queued_at=to_timestamp(T0),
    )
    return scheduler_pb2.Assignment(task=task, assignment_token="tok")


def test_assignment_from_proto_reads_the_task() -> None:
    message = proto_assignment(
        model=types_pb2.ModelRef(name="mlp", version="3"),
        precision=types_pb2.PRECISION_BF16,
        batch_size=4,
        item_count=9,
        data=b"abc",
        inputs=[types_pb2.DatablockRef(id="b1", uri="file:///tmp/b1.pt"), types_pb2.DatablockRef(id="b2")],
        outputs=[types_pb2.DatablockRef(id="out")],
    )
    message.task.spec.parameters.update({"seed": 4, "nested": {"a": [1, 2]}})
    message.task.spec.timeout.FromSeconds(7)
    a = assignment_from_proto(message, device="cpu", artifact_dir="/art", default_timeout_s=300, session=5)
    assert a.task_id == "task_1" and a.attempt == 2 and a.token == "tok" and a.session == 5
    assert a.timeout_s == 7 and a.queued_at == T0
    i = a.input
    assert (i.tenant, i.category, i.model_name, i.model_version, i.precision) == (
        "acme",
        "inference",
        "mlp",
        "3",
        "bf16",
    )
    assert (i.batch_size, i.item_count, i.data) == (4, 9, b"abc")
    assert i.parameters == {"seed": 4, "nested": {"a": [1, 2]}}
    assert i.inputs == ("file:///tmp/b1.pt", "b2") and i.outputs == ("out",)
    assert i.device == "cpu" and i.artifact_dir == "/art"


def test_queued_at_keeps_its_microseconds() -> None:
    message = proto_assignment()
    message.task.queued_at.nanos = 123_456_789
    options: dict[str, Any] = {"device": "cpu", "artifact_dir": "", "default_timeout_s": 1, "session": 1}
    assert assignment_from_proto(message, **options).queued_at == T0 + timedelta(microseconds=123_456)
    message.task.ClearField("queued_at")
    assert assignment_from_proto(message, **options).queued_at is None


def test_default_timeout_applies_without_a_spec_timeout() -> None:
    a = assignment_from_proto(
        proto_assignment(), device="cpu", artifact_dir="", default_timeout_s=42, session=0
    )
    assert a.timeout_s == 42 and a.input.precision == "" and a.input.parameters == {}


def test_a_spec_timeout_keeps_its_fraction() -> None:
    message = proto_assignment()
    message.task.spec.timeout.FromMilliseconds(1500)
    a = assignment_from_proto(message, device="cpu", artifact_dir="", default_timeout_s=42, session=0)
    assert a.timeout_s == 1.5


def test_precision_names_round_trip() -> None:
    for name in ("fp32", "bf16", "fp16", "int8"):
        assert precision_name(precision_enum(name)) == name
    assert precision_enum("") == types_pb2.PRECISION_FP32
    assert precision_name(types_pb2.PRECISION_UNSPECIFIED) == ""


def test_summary_struct_is_json_safe() -> None:
    s = struct_from_dict({"a": (1, 2), "b": float("nan"), "c": {"d": True}, 3: "x"})  # type: ignore[dict-item]
    assert json_format.MessageToDict(s) == {"a": [1.0, 2.0], "b": None, "c": {"d": True}, "3": "x"}


def report(outcome: Outcome, **kw: Any) -> TaskReport:
    task = TaskInput(
        task_id="task_1",
        attempt=2,
        tenant="acme",
        category="inference",
        model_name="mlp",
        precision="int8",
        batch_size=8,
    )
    a = Assignment(input=task, token="tok", timeout_s=10, queued_at=T0)
    return TaskReport(
        assignment=a,
        outcome=outcome,
        started_at=T0 + timedelta(seconds=3),
        finished_at=T0 + timedelta(seconds=5),
        **kw,
    )  # type: ignore[arg-type]


def test_outcome_to_proto(tmp_path: Path) -> None:
    artifact = tmp_path / "out.pt"
    ok = outcome_to_proto(
        report(
            Outcome.SUCCEEDED,
            result=HandlerResult(summary={"n": 1}, inline=b"hi", artifact_path=str(artifact)),
        )
    )
    assert ok.outcome == types_pb2.OUTCOME_SUCCEEDED and ok.assignment_token == "tok" and ok.attempt == 2
    assert ok.result.inline == b"hi" and ok.result.artifact_uri == artifact.as_uri()
    assert ok.result.summary["n"] == 1 and ok.started_at.ToDatetime(tzinfo=UTC) == T0 + timedelta(seconds=3)
    failed = outcome_to_proto(report(Outcome.TIMED_OUT, failure=TaskFailure("TIMED_OUT", "too slow")))
    assert failed.outcome == types_pb2.OUTCOME_TIMED_OUT and failed.error.reason == "TIMED_OUT"
    assert not failed.HasField("result")


def test_metrics_to_proto() -> None:
    r = report(Outcome.SUCCEEDED, result=HandlerResult(items=20), execution_s=2.0, peak_memory_bytes=123)
    sample = TelemetrySample(cpu_utilization=0.5, gpu_utilization=0.25, gpu_power_watts=70.0)
    m = metrics_to_proto(r, worker_id="w1", device_model="Xeon", telemetry=sample)
    assert (m.task_id, m.attempt, m.assignment_token, m.worker_id, m.device_model) == (
        "task_1",
        2,
        "tok",
        "w1",
        "Xeon",
    )
    assert m.model.name == "mlp" and m.precision == types_pb2.PRECISION_INT8 and m.batch_size == 8
    assert m.category == "inference" and m.tenant == "acme"
    assert m.queue_wait.ToTimedelta() == timedelta(seconds=3) and m.execution_time.ToTimedelta() == timedelta(
        seconds=2
    )
    assert m.items_per_second == 10.0 and m.memory_bytes == 123
    assert (m.cpu_utilization, m.gpu_utilization, m.gpu_power_watts) == (0.5, 0.25, 70.0)
    assert m.outcome == types_pb2.OUTCOME_SUCCEEDED and m.finished_at.ToDatetime(
        tzinfo=UTC
    ) == T0 + timedelta(seconds=5)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(1.25, (1, 250_000_000)), (0.000123, (0, 123_000)), (0.0, (0, 0)), (-0.5, (0, 0))],
)
def test_metrics_durations_are_whole_seconds_and_nanos(seconds: float, expected: tuple[int, int]) -> None:
    m = metrics_to_proto(
        report(Outcome.SUCCEEDED, execution_s=seconds),
        worker_id="w1",
        device_model="Xeon",
        telemetry=TelemetrySample(),
    )
    assert m.HasField("execution_time") and (m.execution_time.seconds, m.execution_time.nanos) == expected


def test_worker_info_to_proto() -> None:
    device = DeviceInfo(
        kind="cpu", device="cpu", device_model="Xeon", memory_bytes=10, precisions=CPU_PRECISIONS
    )
    status = WorkerStatus(
        worker_id="w1",
        device=device,
        slots=2,
        free_slots=1,
        categories=("noop",),
        cached_datablocks=("b",),
        telemetry=TelemetrySample(),
        address="h:1",
        draining=True,
    )
    info = worker_info_to_proto(status)
    assert info.kind == types_pb2.WORKER_KIND_CPU and info.draining and info.free_slots == 1
    assert list(info.precisions) == [
        types_pb2.PRECISION_FP32,
        types_pb2.PRECISION_BF16,
        types_pb2.PRECISION_INT8,
    ]


def test_config_defaults_and_env() -> None:
    config = load_config(
        WorkerConfig,
        env={"SWITCHYARD_WORKER_SLOTS": "3", "SWITCHYARD_WORKER_EXTRA_HANDLERS": "a=m:f,b=m.n:g"},
    )
    assert config.port == 50061 and config.metrics_port == -1 and config.device == "cpu"
    assert config.slots == 3 and config.extra_handlers == ("a=m:f", "b=m.n:g")


def test_config_problems_are_collected() -> None:
    with pytest.raises(ConfigError) as err:
        load_config(
            WorkerConfig,
            overrides={"device": "tpu", "slots": 0, "task_timeout_s": 0, "extra_handlers": "bad"},
        )
    text = str(err.value)
    for key in ("device", "slots", "task_timeout_s", "extra_handlers"):
        assert key in text


def test_cuda_without_a_gpu_runs_as_cpu(caplog: pytest.LogCaptureFixture) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    device = detect_device("cuda:0")
    assert device.kind == "cpu" and device.device == "cpu" and device.gpu_memory_bytes == 0
    assert "fp16" not in device.precisions
    assert "running as a CPU worker" in caplog.text


def test_proc_parsing(tmp_path: Path) -> None:
    (tmp_path / "stat").write_text("cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4\n")
    (tmp_path / "meminfo").write_text("MemTotal: 1000 kB\nMemFree: 100 kB\nMemAvailable: 400 kB\n")
    assert read_cpu_times(tmp_path) == (800, 1000)
    assert read_meminfo(tmp_path) == (600 * 1024, 1000 * 1024)
    sampler = TelemetrySampler(None, proc=tmp_path)
    (tmp_path / "stat").write_text("cpu  200 0 200 750 100 0 0 0 0 0\n")
    sample = sampler.sample()
    assert sample.cpu_utilization == pytest.approx(200 / 250)
    assert sample.memory_total_bytes == 1000 * 1024 and sample.gpu_utilization == 0.0
    assert read_meminfo(tmp_path / "missing") == (0, 0)


def test_cpu_model_is_read() -> None:
    assert cpu_model()


def test_gpu_probe_without_nvml_turns_itself_off() -> None:
    from services.worker.telemetry import GpuProbe

    probe = GpuProbe(0)
    if probe.available:
        pytest.skip("this machine has NVML and a GPU")
    assert probe.read() == (0.0, 0, 0, 0.0)
