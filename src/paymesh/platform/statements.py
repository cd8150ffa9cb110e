"""Statements built once and executed with their values as parameters.

SQLAlchemy builds a statement with its values bound in (``table.insert().values(row)``)
in 100 to 300 µs of CPU for a row of 10 to 25 columns: bind parameters, coercions and the
cache key, on every call. The same statement built once and executed with the row as
parameters costs about 25 µs (docs/performance.md). The hot paths use these.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

__all__ = ["by_id", "insert", "insert_new", "update_where"]


@cache
def insert(table: sa.Table) -> sa.Insert:
    """``INSERT INTO table``: the columns are those of the parameters."""
    return table.insert()


@cache
def insert_new(table: sa.Table, dialect: str) -> Any:
    """``INSERT INTO table … ON CONFLICT DO NOTHING`` (rowcount 0 when the row exists),
    in `dialect` ("sqlite" or "postgresql")."""
    build = sqlite_insert if dialect == "sqlite" else pg_insert
    return build(table).on_conflict_do_nothing()


@cache
def by_id(table: sa.Table, *, for_update: bool = False) -> sa.Select[Any]:
    """The row of `table` whose ``id`` is the parameter ``w_id``."""
    query = sa.select(table).where(table.c.id == sa.bindparam("w_id"))
    return query.with_for_update() if for_update else query


@cache
def update_where(table: sa.Table, *columns: str, null: tuple[str, ...] = ()) -> sa.Update:
    """``UPDATE table SET …`` where each of `columns` equals the parameter ``w_<column>``
    and each of `null` is NULL; the columns set are the other parameters."""
    c = table.c
    return table.update().where(
        *(c[name] == sa.bindparam(f"w_{name}") for name in columns),
        *(c[name].is_(None) for name in null),
    )
