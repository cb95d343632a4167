"""``INSERT ... ON CONFLICT`` in the dialect at hand (PostgreSQL and SQLite spell it alike)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert


def upsert(
    dialect: str,
    table: Table,
    values: Mapping[str, Any],
    keys: Sequence[str],
    update: Mapping[str, Any] | None = None,
) -> Insert:
    """Insert ``values``; on a conflict over ``keys`` apply ``update`` (None: do nothing)."""
    statement = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    statement = statement.values(dict(values))
    if update is None:
        return statement.on_conflict_do_nothing(index_elements=list(keys))
    return statement.on_conflict_do_update(index_elements=list(keys), set_=dict(update))


@cache
def replace_row(dialect: str, table: Table, keys: tuple[str, ...]) -> Insert:
    """Insert a row given as parameters; on a conflict over ``keys`` every other column takes
    the new row's value. Built once per table: executed with the row as its parameters, it is
    compiled once and not rebuilt from literal values on every write."""
    statement = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    update = {column.name: statement.excluded[column.name]
              for column in table.columns if column.name not in keys}
    return statement.on_conflict_do_update(index_elements=list(keys), set_=update)
