"""The tenant registry's admin CLI (`python -m services.classifier.admin`) on a SQLite file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from common.db import create_sync_engine
from services.classifier.admin import MIGRATIONS, main, seed_demo_tenants


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'classifier.db'}"


def run(url: str, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["--database-url", url, *argv])
    out, err = capsys.readouterr()
    return code, out.strip(), err.strip()


def listed(url: str, capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, object]]:
    code, out, _ = run(url, capsys, "list-tenants", "--json")
    assert code == 0
    return {t["name"]: t for t in json.loads(out)}


def test_create_set_and_list_tenants(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(url, capsys, "create-tenant", "acme", "--share", "2", "--max-queued", "100")
    assert code == 0 and out.startswith("created tenant acme (share 2; queued 100, running unlimited")
    assert run(url, capsys, "set-tenant", "acme", "--rate", "5.5", "--burst", "20")[0] == 0
    assert run(url, capsys, "set-tenant", "acme", "--share", "3")[0] == 0
    assert listed(url, capsys)["acme"] == {
        "name": "acme",
        "share": 3.0,
        "quotas": {
            "max_queued_tasks": 100,
            "max_running_tasks": 0,
            "submit_rate_per_second": 5.5,
            "submit_burst": 20,
        },
    }
    code, table, _ = run(url, capsys, "list-tenants")
    assert table.splitlines()[0].split() == [
        "TENANT",
        "SHARE",
        "MAX_QUEUED",
        "MAX_RUNNING",
        "RATE/S",
        "BURST",
    ]
    assert table.splitlines()[1].split() == ["acme", "3", "100", "-", "5.5", "20"]


def test_users_and_tokens(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    run(url, capsys, "create-tenant", "acme")
    assert run(url, capsys, "create-user", "acme", "alice")[1] == "created user alice of tenant acme"
    code, token, _ = run(url, capsys, "issue-token", "acme", "alice")
    assert code == 0 and token.startswith("sy_")
    assert run(url, capsys, "revoke-token", token)[1] == "revoked"
    assert run(url, capsys, "revoke-token", token)[1] == "no such active token"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("set-tenant", "nobody", "--share", "2"), "tenant 'nobody' not found"),
        (("create-tenant", "x", "--max-queued", "-1", "--rate", "nan"), "quotas.max_queued_tasks"),
        (("create-tenant", "y", "--share", "0"), "share: must be a finite number > 0"),
    ],
)
def test_errors_are_one_line_and_exit_1(
    url: str, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    code, _, err = run(url, capsys, *argv)
    assert code == 1 and err.startswith("error: ") and message in err and "\n" not in err


def test_seed_demo_tenants_is_repeatable_and_unlimited(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = seed_demo_tenants(url), seed_demo_tenants(url)
    assert set(first) == set(second) == {"acme", "globex", "initech"} and first != second
    tenants = listed(url, capsys)
    assert all(set(t["quotas"].values()) == {0} for t in tenants.values())  # type: ignore[attr-defined]


def test_quota_migration_keeps_existing_tenants_users_and_tokens(url: str) -> None:
    from alembic import command
    from alembic.config import Config

    engine = create_sync_engine(url, "classifier")

    def upgrade_to(revision: str) -> None:
        with engine.begin() as connection:
            cfg = Config()
            cfg.set_main_option("script_location", str(MIGRATIONS))
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)

    upgrade_to("0001")
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO tenants (name, share, created_at) VALUES ('acme', 2, '2026-01-01')")
        )
        conn.execute(
            sa.text("INSERT INTO users (tenant, name, created_at) VALUES ('acme', 'al', '2026-01-01')")
        )
    upgrade_to("head")
    with engine.begin() as conn:
        assert conn.execute(sa.text("SELECT tenant, name FROM users")).all() == [("acme", "al")]
        quotas = "max_queued_tasks, max_running_tasks, submit_rate_per_second, submit_burst"
        assert conn.execute(sa.text(f"SELECT share, {quotas} FROM tenants")).all() == [(2.0, 0, 0, 0.0, 0)]
    engine.dispose()
