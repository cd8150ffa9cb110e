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
import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from paymesh.payments.domain import TenantFees
from paymesh.payments.domain.settlement import (
    BankDetails,
    ItemType,
    LineStatus,
    SettlementItem,
    SettlementLine,
    SettlementSettings,
)
from paymesh.platform.outbox import inbox_table, outbox_table

__all__ = [
    "StatementRow",
    "StoredEvent",
    "bank_statements",
    "event_columns",
    "event_from_row",
    "fees_from_row",
    "fees_row",
    "inbox",
    "item_from_row",
    "item_row",
    "line_from_row",
    "line_row",
    "metadata",
    "outbox",
    "payout_batches",
    "recon_breaks",
    "saga_columns",
    "saga_table",
    "settings_from_row",
    "settlement_items",
    "settlement_lines",
    "settlement_runs",
    "settlement_settings",
    "statement_entries",
    "statement_from_row",
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

# 0009: settlement and reconciliation (paymesh.payments.settlement, docs/settlement.md).
settlement_settings = sa.Table(
    "settlement_settings",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("requires_approval", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("schedule_time", sa.String(5), nullable=False, server_default=""),
    sa.Column("time_zone", sa.String(64), nullable=False, server_default=""),
    sa.Column("schedule_currencies", sa.Text, nullable=False, server_default=""),
    sa.Column("debtor_iban", sa.String(34), nullable=False, server_default=""),
    sa.Column("debtor_bic", sa.String(11), nullable=False, server_default=""),
    sa.Column("debtor_name", sa.String(70), nullable=False, server_default=""),
    sa.Column("updated_at_us", sa.BigInteger, nullable=False),
)

settlement_runs = sa.Table(
    "settlement_runs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("cutoff_us", sa.BigInteger, nullable=False),
    sa.Column("created_at_us", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("payout_batch_id", sa.String(64), nullable=True),
    sa.Column("approved_by", sa.Text, nullable=False, server_default=""),
    sa.Column("approved_at_us", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("item_count", sa.Integer, nullable=False, server_default="0"),
    sa.UniqueConstraint("tenant_id", "currency", "cutoff_us", name="uq_settlement_runs_cutoff"),
    sa.Index("ix_settlement_runs_tenant_created", "tenant_id", "created_at_us", "id"),
)

settlement_lines = sa.Table(
    "settlement_lines",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("account_id", sa.Text, primary_key=True),
    sa.Column("gross", sa.BigInteger, nullable=False),
    sa.Column("refunds", sa.BigInteger, nullable=False),
    sa.Column("fees", sa.BigInteger, nullable=False),
    sa.Column("carried_in", sa.BigInteger, nullable=False),
    sa.Column("net", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("payout_id", sa.String(64), nullable=True),
    sa.Column("bank_iban", sa.String(34), nullable=False, server_default=""),
    sa.Column("bank_bic", sa.String(11), nullable=False, server_default=""),
    sa.Column("bank_name", sa.String(70), nullable=False, server_default=""),
)

# Every capture and refund a run claimed: its key makes the claim once per item.
settlement_items = sa.Table(
    "settlement_items",
    metadata,
    sa.Column("object_id", sa.String(64), primary_key=True),
    sa.Column("type", sa.String(16), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("account_id", sa.Text, nullable=False),
    sa.Column("payment_id", sa.String(64), nullable=False),
    sa.Column("gross", sa.BigInteger, nullable=False),
    sa.Column("fee", sa.BigInteger, nullable=False),
    sa.Column("at_us", sa.BigInteger, nullable=False),
    sa.Column("transfer_ids", sa.Text, nullable=False),
    sa.Index("ix_settlement_items_run", "run_id", "account_id"),
)

payout_batches = sa.Table(
    "payout_batches",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False, unique=True),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("total", sa.BigInteger, nullable=False),
    sa.Column("debtor_iban", sa.String(34), nullable=False),
    sa.Column("debtor_bic", sa.String(11), nullable=False),
    sa.Column("debtor_name", sa.String(70), nullable=False),
    sa.Column("created_at_us", sa.BigInteger, nullable=False),
)

bank_statements = sa.Table(
    "bank_statements",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("statement_id", sa.String(140), nullable=False),
    sa.Column("account_iban", sa.String(34), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("from_date", sa.String(10), nullable=False, server_default=""),
    sa.Column("to_date", sa.String(10), nullable=False, server_default=""),
    sa.Column("entry_count", sa.Integer, nullable=False),
    sa.Column("counts", sa.Text, nullable=False),
    sa.Column("sums", sa.Text, nullable=False),
    sa.Column("created_at_us", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("tenant_id", "statement_id", name="uq_bank_statements_statement"),
    sa.Index("ix_bank_statements_tenant_created", "tenant_id", "created_at_us", "id"),
)

statement_entries = sa.Table(
    "statement_entries",
    metadata,
    sa.Column("statement_id", sa.String(64), primary_key=True),  # bank_statements.id
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("credit", sa.Boolean, nullable=False),
    sa.Column("booked_on", sa.String(10), nullable=False),
    sa.Column("end_to_end_id", sa.String(140), nullable=False, server_default=""),
    sa.Column("reference", sa.String(140), nullable=False, server_default=""),
    sa.Column("return_reason", sa.String(8), nullable=False, server_default=""),
    sa.Column("result", sa.String(32), nullable=False),
    sa.Column("object_kind", sa.String(32), nullable=False, server_default=""),
    sa.Column("object_id", sa.String(64), nullable=False, server_default=""),
    sa.Index("ix_statement_entries_object", "tenant_id", "object_id", "result"),
)

recon_breaks = sa.Table(
    "recon_breaks",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("statement_id", sa.String(64), nullable=False),  # bank_statements.id
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("expected_amount", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("reference", sa.String(140), nullable=False, server_default=""),
    sa.Column("object_kind", sa.String(32), nullable=False, server_default=""),
    sa.Column("object_id", sa.String(64), nullable=False, server_default=""),
    sa.Column("credit", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("return_reason", sa.String(8), nullable=False, server_default=""),
    sa.Column("booked_on", sa.String(10), nullable=False, server_default=""),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("resolution", sa.String(16), nullable=False, server_default=""),
    sa.Column("resolved_object_id", sa.String(64), nullable=False, server_default=""),
    sa.Column("note", sa.Text, nullable=False, server_default=""),
    sa.Column("resolved_by", sa.Text, nullable=False, server_default=""),
    sa.Column("resolved_at_us", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("transfer_id", sa.String(64), nullable=False, server_default=""),
    sa.Column("created_at_us", sa.BigInteger, nullable=False),
    sa.Index("ix_recon_breaks_tenant_created", "tenant_id", "created_at_us", "id"),
    sa.Index("ix_recon_breaks_object", "tenant_id", "type", "object_id"),
)


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


# -- settlement and reconciliation rows ----------------------------------------------


@dataclass(frozen=True)
class StatementRow:
    """An imported bank statement and its reconciliation report."""

    id: str
    tenant_id: str
    statement_id: str
    account_iban: str
    currency: str
    from_date: str
    to_date: str
    entry_count: int
    counts: dict[str, int]
    sums: dict[str, int]
    created_at_us: int


def settings_from_row(r: Any) -> SettlementSettings:
    debtor = BankDetails(r.debtor_iban, r.debtor_bic, r.debtor_name) if r.debtor_iban else None
    currencies = tuple(c for c in r.schedule_currencies.split(",") if c)
    return SettlementSettings(
        r.tenant_id,
        bool(r.requires_approval),
        r.schedule_time,
        r.time_zone,
        currencies,
        debtor,
        r.updated_at_us,
    )


def line_from_row(r: Any) -> SettlementLine:
    bank = BankDetails(r.bank_iban, r.bank_bic, r.bank_name) if r.bank_iban else None
    return SettlementLine(
        r.account_id,
        r.gross,
        r.refunds,
        r.fees,
        r.carried_in,
        r.net,
        LineStatus(r.status),
        r.payout_id,
        bank,
    )


def item_from_row(r: Any) -> SettlementItem:
    return SettlementItem(
        object_id=r.object_id,
        type=ItemType(r.type),
        account_id=r.account_id,
        payment_id=r.payment_id,
        currency=r.currency,
        gross=r.gross,
        fee=r.fee,
        at_us=r.at_us,
        transfer_ids=tuple(t for t in r.transfer_ids.split(",") if t),
    )


def item_row(run_id: str, tenant_id: str, i: SettlementItem) -> dict[str, Any]:
    return {
        "object_id": i.object_id,
        "type": i.type.value,
        "tenant_id": tenant_id,
        "currency": i.currency,
        "run_id": run_id,
        "account_id": i.account_id,
        "payment_id": i.payment_id,
        "gross": i.gross,
        "fee": i.fee,
        "at_us": i.at_us,
        "transfer_ids": ",".join(i.transfer_ids),
    }


def line_row(run_id: str, line: SettlementLine) -> dict[str, Any]:
    bank = line.bank
    return {
        "run_id": run_id,
        "account_id": line.account_id,
        "gross": line.gross,
        "refunds": line.refunds,
        "fees": line.fees,
        "carried_in": line.carried_in,
        "net": line.net,
        "status": line.status.value,
        "payout_id": line.payout_id,
        "bank_iban": bank.iban if bank else "",
        "bank_bic": bank.bic if bank else "",
        "bank_name": bank.name if bank else "",
    }


def statement_from_row(r: Any) -> StatementRow:
    return StatementRow(
        id=r.id,
        tenant_id=r.tenant_id,
        statement_id=r.statement_id,
        account_iban=r.account_iban,
        currency=r.currency,
        from_date=r.from_date,
        to_date=r.to_date,
        entry_count=r.entry_count,
        counts=json.loads(r.counts),
        sums=json.loads(r.sums),
        created_at_us=r.created_at_us,
    )
