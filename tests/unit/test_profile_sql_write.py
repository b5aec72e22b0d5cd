"""The PostgreSQL writer's upserts: one statement for the usual batch, bounded ones for big batches."""

from __future__ import annotations

from typing import Any

from services.profile_store.sql_write import (
    PROFILE_COLUMNS,
    RESOURCE_COLUMNS,
    TENANT_COLUMNS,
    FoldRows,
    PostgresWriter,
)


def fold_rows(profiles: int, resources: int, tenants: int) -> FoldRows:
    def rows(n: int, columns: tuple[str, ...], tag: str) -> list[tuple[Any, ...]]:
        return [tuple(f"{tag}{i}.{c}" for c in columns) for i in range(n)]

    return FoldRows(
        profiles=rows(profiles, PROFILE_COLUMNS, "p"),
        resources=rows(resources, RESOURCE_COLUMNS, "r"),
        tenants=rows(tenants, TENANT_COLUMNS, "t"),
    )


def every_value(rows: FoldRows) -> list[Any]:
    tables = (rows.profiles, rows.worker_profiles, rows.resources, rows.tenants)
    return [v for table in tables for row in table for v in row]


def test_the_usual_batch_is_one_statement() -> None:
    rows = fold_rows(profiles=2, resources=2, tenants=1)
    [(sql, params)] = PostgresWriter()._statements(rows)
    assert sql.startswith("WITH ") and sql.count("INSERT INTO") == 3
    assert sql.count("%s") == len(params)
    assert params == every_value(rows)


def test_one_table_alone_is_a_plain_insert() -> None:
    rows = fold_rows(profiles=0, resources=0, tenants=3)
    [(sql, params)] = PostgresWriter()._statements(rows)
    assert sql.startswith("INSERT INTO tenant_usage") and sql.count("%s") == len(params) == 9
    assert PostgresWriter()._statements(FoldRows()) == []


def test_big_batches_are_split_within_the_limits() -> None:
    writer: Any = PostgresWriter()
    writer._ROWS_PER_INSERT, writer._PARAMS_PER_STATEMENT = 3, 60
    rows = fold_rows(profiles=10, resources=4, tenants=2)
    statements = writer._statements(rows)
    assert len(statements) > 1
    for sql, params in statements:
        assert sql.count("%s") == len(params) <= 60
        assert all(part.count("), (") <= 2 for part in sql.split("INSERT INTO")), "at most 3 rows per INSERT"
    assert sum(sql.count("INSERT INTO") for sql, _ in statements) == 4 + 2 + 1
    assert [v for _, params in statements for v in params] == every_value(rows)
