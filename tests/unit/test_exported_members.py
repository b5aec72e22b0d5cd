"""The public names of `switchyard` are exactly the curated list, and each one resolves."""

from __future__ import annotations

import switchyard

EXPECTED = {
    "DEFAULT_ADDRESS",
    "TERMINAL_STATES",
    "Client",
    "FieldViolation",
    "Mesh",
    "MeshError",
    "MeshOptions",
    "QuotaViolation",
    "SubmitResult",
    "SwitchyardError",
    "__version__",
    "create_synthetic_data",
    "generate_source_assets",
    "identify_variation_parameters",
    "inference",
    "ingest_source_assets",
    "noop",
    "preprocess",
    "split",
    "task",
    "training_step",
    "vary_variation_parameters",
}


def test_all_is_the_curated_list() -> None:
    assert set(switchyard.__all__) == EXPECTED
    assert len(switchyard.__all__) == len(EXPECTED)


def test_every_exported_name_resolves() -> None:
    for name in switchyard.__all__:
        assert getattr(switchyard, name) is not None, name


def test_public_objects_say_where_they_live() -> None:
    for name in switchyard.__all__:
        member = getattr(switchyard, name)
        module = getattr(member, "__module__", None)
        if module is not None and callable(member):
            assert module.startswith("switchyard."), (name, module)
            assert not module.startswith("switchyard.v1"), name


def test_generated_code_stays_under_v1() -> None:
    from switchyard.v1 import classifier_pb2, classifier_pb2_grpc, types_pb2

    assert classifier_pb2.DESCRIPTOR.package == "switchyard.v1"
    assert classifier_pb2_grpc.ClassifierServiceStub is not None
    assert types_pb2.TaskSpec is not None
    assert "types_pb2" not in switchyard.__all__
