"""Hostile input: 1,000+ generated SubmitTasks requests against the classifier in front of
the REAL scheduler (SQLite). Each is answered OK, INVALID_ARGUMENT or RESOURCE_EXHAUSTED,
never INTERNAL or UNKNOWN, and the service still serves a valid request afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from google.protobuf import duration_pb2, timestamp_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from switchyard.v1 import classifier_pb2, types_pb2
from tests.integration.test_classifier_with_scheduler import FrontDoor, start_front_door

pytestmark = pytest.mark.asyncio(loop_scope="module")

ALLOWED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED}
LIMITS = {
    "max_tasks_per_submit": 300,
    "max_task_data_bytes": 1024,
    "max_task_parameters_bytes": 2048,
    "max_submit_bytes": 262144,
}
INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
CATEGORIES = ["inference", "create_synthetic_data", "ingest_source_assets", "noop", "preprocess"]
KNOWN_IDS: list[str] = []  # a task of another tenant, filled by the fixture

odd_numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, -1.0, 1e308, -1e308, 5e-324, float("nan"), float("inf")]),
)
odd_ints = st.one_of(st.sampled_from([0, -1, 1, 2**31 - 1, -(2**31), 2**63 - 1, -(2**63)]), INT64)
text = st.one_of(st.text(max_size=40), st.text(alphabet="\x00\x01\n\t é€𝄞", max_size=10), st.just("x" * 300))
json_leaf = st.one_of(st.none(), st.booleans(), odd_numbers, text)
json_tree = st.recursive(
    json_leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


def deep(depth: int) -> dict[str, Any]:
    tree: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        tree = {"a": tree}
    return tree


def _category(draw: st.DrawFn, spec: types_pb2.TaskSpec) -> None:
    spec.category = draw(text)


def _model(draw: st.DrawFn, spec: types_pb2.TaskSpec) -> None:
    spec.model.name, spec.model.version = draw(text), draw(text)


def _enums(draw: st.DrawFn, spec: types_pb2.TaskSpec) -> None:
    spec.precision, spec.min_precision = draw(st.one_of(st.integers(0, 5), INT32)), draw(INT32)  # type: ignore[assignment]
    spec.qos.qos_class = draw(st.one_of(st.integers(0, 4), INT32))  # type: ignore[assignment]
    spec.qos.on_deadline_miss = draw(st.one_of(st.integers(0, 3), INT32))  # type: ignore[assignment]


def _numbers(draw: st.DrawFn, spec: types_pb2.TaskSpec) -> None:
    spec.batch_size, spec.item_count = draw(INT32), draw(odd_ints)
    spec.resources.cpu_cores, spec.resources.memory_bytes = draw(odd_numbers), draw(odd_ints)
    spec.resources.gpu_count, spec.resources.gpu_memory_bytes = draw(odd_numbers), draw(odd_ints)


def _times(draw: st.DrawFn, spec: types_pb2.TaskSpec) -> None:
    spec.qos.deadline.CopyFrom(timestamp_pb2.Timestamp(seconds=draw(odd_ints), nanos=draw(INT32)))
    spec.qos.latency_target.CopyFrom(duration_pb2.Duration(seconds=draw(odd_ints), nanos=draw(INT32)))
    spec.timeout.CopyFrom(duration_pb2.Duration(seconds=draw(odd_ints), nanos=draw(INT32)))


def _data(draw: st.DrawFn, spec: types_pb2.TaskSpec) -> None:
    spec.data = draw(st.one_of(st.binary(max_size=64), st.integers(900, 3000).map(lambda n: b"\xff" * n)))


def _references(draw: st.DrawFn, spec: types_pb2.TaskSpec) -> None:
    spec.depends_on.extend(
        draw(st.lists(st.one_of(text, st.sampled_from(KNOWN_IDS or ["task_x"])), max_size=3))
    )
    spec.inputs.add(id=draw(text), size_bytes=draw(odd_ints))
    if draw(st.booleans()):
        spec.depends_on.extend(["task_x"] * 1001)


def _keys(draw: st.DrawFn, spec: types_pb2.TaskSpec) -> None:
    spec.labels.update(draw(st.dictionaries(text, text, max_size=4)))
    spec.idempotency_key = draw(text)


def _parameters(draw: st.DrawFn, spec: types_pb2.TaskSpec) -> None:
    kind = draw(st.sampled_from(["tree", "deep", "large"]))
    if kind == "tree":
        spec.parameters.update(draw(st.dictionaries(st.text(max_size=10), json_tree, max_size=6)))
    elif kind == "deep":
        spec.parameters.update(deep(draw(st.integers(1, 30))))
    else:
        spec.parameters.update({"blob": "z" * draw(st.integers(1000, 5000))})


MUTATIONS = [_category, _model, _enums, _numbers, _times, _data, _references, _keys, _parameters]


@st.composite
def specs(draw: st.DrawFn) -> types_pb2.TaskSpec:
    """A plausible spec with 0 to 3 hostile mutations, so that requests get past some
    checks and fail (or pass) at the next ones, the scheduler's included."""
    spec = types_pb2.TaskSpec(
        category=draw(st.sampled_from(CATEGORIES)),
        model=types_pb2.ModelRef(name="mlp"),
        batch_size=draw(st.integers(0, 64)),
    )
    for mutate in draw(st.lists(st.sampled_from(MUTATIONS), max_size=3)):
        mutate(draw, spec)
    return spec


@st.composite
def submits(draw: st.DrawFn) -> classifier_pb2.SubmitTasksRequest:
    tasks = draw(st.lists(specs(), max_size=3)) * draw(st.sampled_from([1, 1, 1, 2, 80, 400]))
    request = classifier_pb2.SubmitTasksRequest(tasks=tasks)
    if draw(st.booleans()):
        request.split.CopyFrom(
            types_pb2.SplitRequest(
                template=draw(specs()),
                total_items=draw(st.one_of(st.integers(-3, 500), odd_ints)),
                batch_size=draw(st.one_of(st.integers(-3, 64), INT32)),
            )
        )
    return request


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("hostile")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def door(module_dir: Path) -> AsyncIterator[FrontDoor]:
    started = await start_front_door(
        f"sqlite:///{module_dir / 'classifier.db'}", f"sqlite:///{module_dir / 'scheduler.db'}", **LIMITS
    )
    other = await started.stub.SubmitTasks(
        classifier_pb2.SubmitTasksRequest(tasks=[types_pb2.TaskSpec(category="noop")]),
        metadata=started.auth("globex"),
    )
    KNOWN_IDS.append(other.tasks[0].id)
    yield started
    await started.close()


SEEN: dict[grpc.StatusCode, int] = {}


async def submit_code(door: FrontDoor, request: classifier_pb2.SubmitTasksRequest) -> grpc.StatusCode:
    try:
        await asyncio.wait_for(door.stub.SubmitTasks(request, metadata=door.auth("acme")), 30)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


@settings(
    max_examples=1000,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(request=submits())
async def test_hostile_submits_get_ok_or_a_client_error(door: FrontDoor, request: Any) -> None:
    code = await submit_code(door, request)
    SEEN[code] = SEEN.get(code, 0) + 1
    assert code in ALLOWED, (code, request)


async def test_every_kind_of_answer_was_seen_and_a_valid_submit_still_works(door: FrontDoor) -> None:
    assert sum(SEEN.values()) >= 1000, SEEN
    assert set(SEEN) == ALLOWED, SEEN
    good = classifier_pb2.SubmitTasksRequest(tasks=[types_pb2.TaskSpec(category="inference", batch_size=4)])
    reply = await door.stub.SubmitTasks(good, metadata=door.auth("acme"))
    assert reply.tasks[0].state == types_pb2.TASK_STATE_QUEUED


async def test_undecodable_bodies_are_invalid_argument(door: FrontDoor) -> None:
    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            byte, n = n & 0x7F, n >> 7
            out.append(byte | (0x80 if n else 0))
            if not n:
                return bytes(out)

    def field(number: int, payload: bytes) -> bytes:
        return varint(number << 3 | 2) + varint(len(payload)) + payload

    nested = b""
    for _ in range(200):  # past protobuf's nesting limit: the client library could not build it
        nested = field(1, field(1, b"a") + field(2, field(5, nested)))
    call = door.channel.unary_unary(
        "/switchyard.v1.ClassifierService/SubmitTasks",
        request_serializer=lambda body: body,
        response_deserializer=classifier_pb2.SubmitTasksResponse.FromString,
    )
    for body in (field(1, field(1, b"noop") + field(8, nested)), b"\xff\xff\xff\xff", field(1, b"\x80")):
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await call(body, metadata=door.auth("acme"))
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT, exc.value.details()
