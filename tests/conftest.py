"""Database fixtures: SQLite files and PostgreSQL databases cloned from a migrated template.

The template (`switchyard_test_template_<pid>`) is migrated once per session with every
service's Alembic migrations; each test that asks for `pg_url` gets a fresh clone.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = os.environ.get("SWITCHYARD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
SERVICE_SCHEMAS = {"classifier": "classifier", "scheduler": "scheduler", "profile_store": "profile_store"}


def _pg_url(dbname: str) -> str:
    base, _, _ = PG_ADMIN.rpartition("/")
    return f"{base}/{dbname}"


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(PG_ADMIN, autocommit=True)


def migrate_all(url: str) -> None:
    """Run every service's migrations that exist into the database at url."""
    from common.db import upgrade

    for service, schema in SERVICE_SCHEMAS.items():
        migrations = ROOT / "services" / service / "migrations"
        if (migrations / "env.py").exists():
            upgrade(url, schema, migrations)


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    name = f"switchyard_test_template_{os.getpid()}"
    with _admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    migrate_all(_pg_url(name))
    yield name
    with _admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_template: str) -> Iterator[str]:
    """A fresh, fully migrated PostgreSQL database for one test."""
    name = f"switchyard_test_{uuid.uuid4().hex[:12]}"
    with _admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    yield _pg_url(name)
    with _admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_dir(tmp_path: Path) -> Path:
    """A directory for per-service SQLite files (one writer per file)."""
    d = tmp_path / "db"
    d.mkdir()
    return d


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Runs a test once on SQLite and once on PostgreSQL (migrated)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return str(request.getfixturevalue("pg_url"))
