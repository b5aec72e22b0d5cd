"""The classifier's registration: every method, and relayed answers that may be bytes."""

from __future__ import annotations

from typing import Any

from services.classifier.forward import RELAYED, add_classifier_servicer
from switchyard.v1 import classifier_pb2, scheduler_pb2, types_pb2


class Capture:
    """Stands in for a grpc.aio.Server and keeps what is registered."""

    def __init__(self) -> None:
        self.handlers: dict[str, Any] = {}
        self.generic: list[Any] = []

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self.generic.extend(handlers)

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        assert service == "switchyard.v1.ClassifierService"
        self.handlers = handlers


class Servicer:
    def __getattr__(self, name: str) -> Any:
        return f"behaviour of {name}"


def test_every_method_is_registered_with_its_own_messages() -> None:
    server = Capture()
    add_classifier_servicer(Servicer(), server)  # type: ignore[arg-type]
    service = classifier_pb2.DESCRIPTOR.services_by_name["ClassifierService"]
    assert set(server.handlers) == {m.name for m in service.methods} and len(server.generic) == 1
    for method in service.methods:
        handler = server.handlers[method.name]
        behaviour = handler.unary_stream if method.server_streaming else handler.unary_unary
        assert behaviour == f"behaviour of {method.name}"
        assert handler.request_deserializer.__self__.DESCRIPTOR is method.input_type


def test_relayed_answers_pass_as_bytes_and_others_are_serialised() -> None:
    server = Capture()
    add_classifier_servicer(Servicer(), server)  # type: ignore[arg-type]
    assert {"GetTasks", "WatchTasks"} == RELAYED
    task = types_pb2.Task(id="task_1", state=types_pb2.TASK_STATE_SUCCEEDED)
    scheduler_bytes = scheduler_pb2.SchedulerServiceWatchTasksResponse(tasks=[task]).SerializeToString()
    relayed: dict[str, Any] = {
        "GetTasks": classifier_pb2.GetTasksResponse,
        "WatchTasks": classifier_pb2.WatchTasksResponse,
    }
    for name, ours in relayed.items():
        serialize = server.handlers[name].response_serializer
        assert serialize(scheduler_bytes) is scheduler_bytes
        assert ours.FromString(serialize(scheduler_bytes)).tasks[0] == task, "the same wire format"
        assert serialize(ours(tasks=[task])) == scheduler_bytes
    job = classifier_pb2.GetJobResponse(job=types_pb2.Job(id="job_1"))
    assert server.handlers["GetJob"].response_serializer(job) == job.SerializeToString()


def _fields(message: Any) -> list[tuple[int, str, int, str]]:
    return sorted(
        (f.number, f.name, f.type, f.message_type.full_name if f.message_type else "")
        for f in message.DESCRIPTOR.fields
    )


def test_relayed_messages_keep_one_wire_format() -> None:
    """Bytes relayed as they come are only right while the scheduler's answer and ours have
    the same fields: a field added on one side only must fail here, not reach a tenant."""
    pairs = {
        "GetTasks": (scheduler_pb2.SchedulerServiceGetTasksResponse, classifier_pb2.GetTasksResponse),
        "WatchTasks": (scheduler_pb2.SchedulerServiceWatchTasksResponse, classifier_pb2.WatchTasksResponse),
    }
    assert set(pairs) == RELAYED
    for theirs, ours in pairs.values():
        assert _fields(theirs) == _fields(ours)
