"""Rows to and from domain objects: the columns that hold a field of the same name."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["attributes", "columns"]


def attributes(source: object, names: Iterable[str]) -> dict[str, Any]:
    """The attributes `names` of `source`, by name (the columns of a row that hold them)."""
    return {name: getattr(source, name) for name in names}


def columns(row: Mapping[Any, Any], names: Iterable[str], prefix: str = "") -> dict[str, Any]:
    """The columns ``prefix + name`` of `row` for `names`, by name (the fields they hold)."""
    return {name: row[prefix + name] for name in names}
