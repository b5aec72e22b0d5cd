"""Database engines and migrations, the same code on PostgreSQL and SQLite.

Each service owns its tables. On PostgreSQL the services share one database with a schema
per service (selected through `search_path`, so table definitions carry no schema); on
SQLite each service has its own file. Alembic migrations run on both.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]*$")


def is_postgres(url: str) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


def async_url(url: str) -> str:
    """postgresql://… → postgresql+psycopg://…; sqlite:///… → sqlite+aiosqlite:///…"""
    parsed = make_url(url)
    driver = {"postgresql": "psycopg", "sqlite": "aiosqlite"}.get(parsed.get_backend_name())
    if driver is None:
        raise ValueError(f"unsupported database {parsed.get_backend_name()!r}: use postgresql or sqlite")
    return parsed.set(drivername=f"{parsed.get_backend_name()}+{driver}").render_as_string(
        hide_password=False
    )


def sync_url(url: str) -> str:
    parsed = make_url(url)
    driver = "postgresql+psycopg" if parsed.get_backend_name() == "postgresql" else "sqlite"
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def _connect_args(url: str, schema: str) -> dict[str, Any]:
    if not _SCHEMA_RE.match(schema):
        raise ValueError(f"bad schema name {schema!r}")
    if is_postgres(url):
        return {"options": f"-c search_path={schema}"}
    return {"timeout": 30}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def ensure_sqlite_dir(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def create_engine(url: str, schema: str, *, pool_size: int = 10) -> AsyncEngine:
    """An async engine bound to the service's schema (PostgreSQL) or file (SQLite)."""
    ensure_sqlite_dir(url)
    kwargs: dict[str, Any] = {"connect_args": _connect_args(url, schema)}
    if is_postgres(url):
        kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
    engine = create_async_engine(async_url(url), **kwargs)
    if not is_postgres(url):
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def create_sync_engine(url: str, schema: str) -> sa.Engine:
    ensure_sqlite_dir(url)
    engine = sa.create_engine(sync_url(url), connect_args=_connect_args(url, schema))
    if not is_postgres(url):
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def upgrade(url: str, schema: str, migrations: Path) -> None:
    """Create the schema if needed and run the service's Alembic migrations to head."""
    from alembic import command
    from alembic.config import Config

    if is_postgres(url):
        admin = sa.create_engine(sync_url(url))
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        admin.dispose()
    engine = create_sync_engine(url, schema)
    try:
        with engine.begin() as connection:
            cfg = Config()
            cfg.set_main_option("script_location", str(migrations))
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")
    finally:
        engine.dispose()
