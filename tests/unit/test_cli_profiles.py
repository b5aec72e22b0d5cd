"""`switchyard profiles` and `switchyard tenants` against a fake profile store on port 0."""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from switchyard import cli, commands
from switchyard.errors import SwitchyardError
from switchyard.v1 import profile_store_pb2, profile_store_pb2_grpc, types_pb2
from tests.helpers import free_port

TOKEN = "operator-internal-token"


def profile(device: str, model: str, count: int, mean: float) -> types_pb2.Profile:
    key = types_pb2.ProfileKey(
        device_model=device, model=types_pb2.ModelRef(name=model, version="1"),
        precision=types_pb2.PRECISION_BF16, batch_bucket=16, category="inference",
    )  # fmt: skip
    return types_pb2.Profile(
        key=key, count=count, mean_seconds=mean, ewma_seconds=mean, p50_seconds=mean,
        p95_seconds=2 * mean, p99_seconds=3 * mean, items_per_second=16 / mean,
    )  # fmt: skip


PROFILES = [
    profile("h100", "resnet", 40, 0.012),
    profile("a10", "resnet", 7, 0.05),
    profile("h100", "bert", 3, 1.5),
]


class FakeProfileStore(profile_store_pb2_grpc.ProfileStoreServiceServicer):
    def __init__(self) -> None:
        self.requests: list[profile_store_pb2.ListProfilesRequest] = []

    async def ListProfiles(self, request: Any, context: Any) -> profile_store_pb2.ListProfilesResponse:
        if ("authorization", f"Bearer {TOKEN}") not in context.invocation_metadata():
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "bad internal token")
        self.requests.append(request)
        matching = [
            p for p in PROFILES if not request.device_model or p.key.device_model == request.device_model
        ]
        # Two pages, to show that the command follows page tokens.
        start = int(request.page_token or 0)
        page = matching[start : start + 2]
        more = start + 2 < len(matching)
        return profile_store_pb2.ListProfilesResponse(
            profiles=page, next_page_token=str(start + 2) if more else ""
        )

    async def ListTenantScores(
        self, request: Any, context: Any
    ) -> profile_store_pb2.ListTenantScoresResponse:
        Score = types_pb2.TenantScore
        scores = [
            Score(tenant="acme", share=2, decayed_usage=30, usage_score=1.5, fair_share_factor=2**-1.5),
            Score(tenant="zeta", share=1, decayed_usage=0, usage_score=0, fair_share_factor=1),
        ]
        return profile_store_pb2.ListTenantScoresResponse(scores=scores)


@pytest.fixture
async def store() -> AsyncIterator[tuple[FakeProfileStore, str]]:
    fake = FakeProfileStore()  # type: ignore[abstract]
    server = grpc.aio.server()
    profile_store_pb2_grpc.add_ProfileStoreServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield fake, f"127.0.0.1:{port}"
    await server.stop(None)


def args(*argv: str) -> argparse.Namespace:
    return cli.resolve_connection(cli.build_parser().parse_args(argv), {})


async def test_profiles_table_with_filters_and_pages(
    store: tuple[FakeProfileStore, str], capsys: pytest.CaptureFixture[str]
) -> None:
    fake, address = store
    argv = ["profiles", "--profile-store", address, "--internal-token", TOKEN, "--precision", "bf16"]
    assert await commands.run(args(*argv)) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["DEVICE", "MODEL", "PRECISION", "BATCH", "CATEGORY", "COUNT",
                                "MEAN", "EWMA", "P50", "P95", "P99", "ITEMS/S"]  # fmt: skip
    assert lines[1].split() == ["h100", "resnet:1", "BF16", "<=16", "inference", "40",
                                "12ms", "12ms", "12ms", "24ms", "36ms", "1333.3"]  # fmt: skip
    assert [line.split()[:2] for line in lines[2:]] == [["a10", "resnet:1"], ["h100", "bert:1"]]
    assert lines[3].split()[6:11] == ["1.50s", "1.50s", "1.50s", "3.00s", "4.50s"]
    assert [r.page_token for r in fake.requests] == ["", "2"]
    assert fake.requests[0].precision == types_pb2.PRECISION_BF16
    assert await commands.run(args(*argv, "--device", "a10", "--model", "resnet", "--json")) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [p["key"]["device_model"] for p in printed] == ["a10"]
    assert (fake.requests[-1].device_model, fake.requests[-1].model_name) == ("a10", "resnet")


async def test_tenants_table_lowest_usage_score_first(
    store: tuple[FakeProfileStore, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, address = store
    monkeypatch.setenv("SWITCHYARD_INTERNAL_TOKEN", TOKEN)
    assert await commands.run(args("tenants", "--profile-store", address)) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "TENANT  SHARE  USAGE (REF-S)  USAGE SCORE  FAIR-SHARE FACTOR"
    assert lines[1].split() == ["zeta", "1", "0.00", "0.000", "1.000"]
    assert lines[2].split() == ["acme", "2", "30.00", "1.500", "0.354"]


async def test_operator_errors(store: tuple[FakeProfileStore, str], monkeypatch: pytest.MonkeyPatch) -> None:
    _, address = store
    monkeypatch.delenv("SWITCHYARD_INTERNAL_TOKEN", raising=False)
    with pytest.raises(commands.UsageError, match="SWITCHYARD_INTERNAL_TOKEN"):
        await commands.run(args("tenants", "--profile-store", address))
    with pytest.raises(SwitchyardError) as caught:
        await commands.run(args("profiles", "--profile-store", address, "--internal-token", "wrong"))
    assert caught.value.code == "UNAUTHENTICATED"
    with pytest.raises(commands.UsageError, match="precision"):
        await commands.run(
            args("profiles", "--profile-store", address, "--internal-token", TOKEN, "--precision", "fp7")
        )
    down = f"127.0.0.1:{free_port()}"
    with pytest.raises(SwitchyardError, match="is the profile store running") as caught:
        await commands.run(
            args("tenants", "--profile-store", down, "--internal-token", TOKEN, "--timeout", "2")
        )
    assert caught.value.code == "UNAVAILABLE"


def test_defaults_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    parsed = args("profiles")
    assert (parsed.profile_store, parsed.internal_token, parsed.model, parsed.device) == (
        "127.0.0.1:50053",
        None,
        "",
        "",
    )
    for argv in (["profiles", "--help"], ["tenants", "--help"]):
        with pytest.raises(SystemExit) as exited:
            cli.main(argv)
        assert exited.value.code == 0
    assert "--internal-token" in capsys.readouterr().out
