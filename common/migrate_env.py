"""The body of every service's Alembic env.py (online mode, connection given by `upgrade`)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context


def run(target_metadata: sa.MetaData) -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        url = context.config.get_main_option("sqlalchemy.url")
        if not url:
            raise RuntimeError("no connection or sqlalchemy.url given to alembic")
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            _migrate(conn, target_metadata)
        return
    _migrate(connection, target_metadata)


def _migrate(connection: sa.Connection, target_metadata: sa.MetaData) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
