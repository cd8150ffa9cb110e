"""The payments service's tables (SQLAlchemy Core), declared on one ``metadata``.

Each flow declares its own table in its module (:mod:`paymesh.payments.flows`)
with :func:`saga_columns`; this module holds the rest. Every saga row carries
its status and the step in progress (``step``, ``attempts``,
``next_attempt_at_us``, ``step_started_at_us``); money is BigInteger minor
units and times are BigInteger unix microseconds. Migrations create exactly these.

The row mapping of what is not a flow's object lives here too: a tenant's fee
schedule, and an outbox row read as the tenant's :class:`StoredEvent`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from paymesh.payments.domain import TenantFees
from paymesh.platform.outbox import inbox_table, outbox_table

__all__ = [
    "StoredEvent",
    "event_columns",
    "event_from_row",
    "fees_from_row",
    "fees_row",
    "inbox",
    "metadata",
    "outbox",
    "saga_columns",
    "saga_table",
    "tenant_fees",
]

metadata = sa.MetaData()


def saga_columns() -> list[sa.Column[Any]]:
    """The columns every saga table has: its times, its step in progress and the step's lease."""
    return [
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
        sa.Column("updated_at_us", sa.BigInteger, nullable=False),
        sa.Column("step", sa.String(16), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at_us", sa.BigInteger, nullable=False, server_default="0"),
        # 0004: when the step in progress was first recorded (its deadline counts from here).
        sa.Column("step_started_at_us", sa.BigInteger, nullable=False, server_default="0"),
        # 0007: the payments process that wrote the step last (PostgreSQL: the `sub` of its
        # liveness lock); a step whose owner is gone is resumed at once, whatever its lease.
        sa.Column("lease_owner", sa.BigInteger, nullable=True),
    ]


def saga_table(name: str, *own: sa.Column[Any] | sa.Index, listed: bool = True) -> sa.Table:
    """A flow's table: its id and tenant, its `own` columns, its status and failure code,
    the saga columns; indexed by step (the Resumer's scan) and, when `listed`, by
    (tenant, created) for the tenant's list, newest first (0006)."""
    columns = [c for c in own if isinstance(c, sa.Column)]
    indexes = [i for i in own if isinstance(i, sa.Index)]
    indexes.append(sa.Index(f"ix_{name}_step", "step", "next_attempt_at_us"))
    if listed:
        indexes.append(sa.Index(f"ix_{name}_tenant_created", "tenant_id", "created_at_us", "id"))
    return sa.Table(
        name,
        metadata,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        *columns,
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("failure_code", sa.String(64), nullable=False, server_default=""),
        *saga_columns(),
        *indexes,
    )


tenant_fees = sa.Table(
    "tenant_fees",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("fixed", sa.BigInteger, nullable=False),
    sa.Column("basis_points", sa.Integer, nullable=False),
    sa.Column("updated_at_us", sa.BigInteger, nullable=False),
)

outbox = outbox_table(metadata)

# 0005: the events consumed (risk's review resolutions), once per event id.
inbox = inbox_table(metadata)


def fees_row(fees: TenantFees) -> dict[str, Any]:
    """The ``tenant_fees`` row of a fee schedule."""
    return dataclasses.asdict(fees)


def fees_from_row(row: sa.Row[Any]) -> TenantFees:
    """The fee schedule in a ``tenant_fees`` row."""
    return TenantFees(**row._mapping)


@dataclass(frozen=True)
class StoredEvent:
    """An event as the outbox keeps it: its envelope JSON and where it sits."""

    seq: int
    id: str
    type: str
    subject: str
    tenant_id: str
    created_at_us: int
    json: str


# The outbox columns a StoredEvent is read from, each labelled with its field's name.
event_columns: tuple[sa.ColumnElement[Any], ...] = (
    outbox.c.seq,
    outbox.c.event_id.label("id"),
    outbox.c.type,
    outbox.c.key.label("subject"),
    outbox.c.tenant_id,
    outbox.c.created_at_us,
    outbox.c.payload.label("json"),
)


def event_from_row(row: sa.Row[Any]) -> StoredEvent:
    """The event in a row selected as :data:`event_columns`."""
    return StoredEvent(**row._mapping)
