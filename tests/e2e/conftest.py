"""The whole mesh as separate processes (switchyard's own launcher), once per database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
import pytest_asyncio

from switchyard.mesh import Mesh, MeshOptions
from tests.conftest import PG_ADMIN, _pg_url


@pytest.fixture(scope="module")
def mesh_database(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None for SQLite files; a fresh, empty PostgreSQL database the services migrate."""
    if request.param == "sqlite":
        yield None
        return
    name = f"switchyard_e2e_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield _pg_url(name)
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(mesh_database: str | None, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Mesh]:
    data_dir: Path = tmp_path_factory.mktemp("mesh")
    options = MeshOptions(
        data_dir=data_dir,
        database_url=mesh_database,
        base_port=0,
        cpu_workers=1,
        gpu_workers=0,
        slots=2,
        startup_timeout_s=180,
    )
    async with Mesh(options) as started:
        yield started
