"""The risk database's tables (SQLAlchemy Core), declared once for the stores and
the migrations' check, and row <-> domain mapping."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import sqlalchemy as sa

from paymesh.platform.outbox import inbox_table, outbox_table
from paymesh.platform.rows import attributes, columns
from paymesh.risk.domain import (
    DECISION_VALUES,
    Decision,
    ListEntry,
    Outcome,
    PayerStats,
    PaymentContext,
    Reason,
    Review,
    ReviewStatus,
)

__all__ = [
    "decision_from_row",
    "decision_values",
    "decisions",
    "inbox",
    "list_entries",
    "list_entry_from_row",
    "metadata",
    "outbox",
    "payer_countries",
    "payer_stats",
    "payer_stats_from_row",
    "payers",
    "review_from_row",
    "review_values",
    "reviews",
    "velocity",
]

metadata = sa.MetaData()

decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("payment_id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("payer_account_id", sa.String(64), nullable=False),
    sa.Column("payee_account_id", sa.String(64), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("score", sa.Integer, nullable=False),
    sa.Column("reasons", sa.Text, nullable=False),
    sa.Column("rules_version", sa.String(64), nullable=False),
    sa.Column("decided_at_us", sa.BigInteger, nullable=False),
    sa.Column("rules_checksum", sa.String(64), nullable=False, server_default=""),
    sa.Column("ip", sa.String(128), nullable=False, server_default=""),
    sa.Column("device_id", sa.String(128), nullable=False, server_default=""),
    sa.Column("country", sa.String(8), nullable=False, server_default=""),
    sa.Index("ix_decisions_tenant_decided", "tenant_id", "decided_at_us"),
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)

# One row per (tenant, payer, currency): succeeded payments, Welford mean and M2.
payer_stats = sa.Table(
    "payer_stats",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("payer_account_id", sa.String(64), primary_key=True),
    sa.Column("currency", sa.String(3), primary_key=True),
    sa.Column("succeeded_count", sa.BigInteger, nullable=False),
    sa.Column("succeeded_amount", sa.BigInteger, nullable=False),
    sa.Column("last_event_at_us", sa.BigInteger, nullable=False),
    sa.Column("amount_mean", sa.Float, nullable=False, server_default="0"),
    sa.Column("amount_m2", sa.Float, nullable=False, server_default="0"),
)

payers = sa.Table(
    "payers",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("payer_account_id", sa.String(64), primary_key=True),
    sa.Column("first_seen_us", sa.BigInteger, nullable=False),
    sa.Column("succeeded_count", sa.BigInteger, nullable=False),
)

payer_countries = sa.Table(
    "payer_countries",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("payer_account_id", sa.String(64), primary_key=True),
    sa.Column("country", sa.String(8), primary_key=True),
    sa.Column("succeeded_count", sa.BigInteger, nullable=False),
)

# One velocity entry per payment, found by each dimension within a time range.
velocity = sa.Table(
    "velocity",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("payment_id", sa.String(64), primary_key=True),
    sa.Column("payer", sa.String(64), nullable=False),
    sa.Column("payee", sa.String(64), nullable=False),
    sa.Column("device", sa.String(128), nullable=False),
    sa.Column("ip", sa.String(128), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("at_us", sa.BigInteger, nullable=False),
    sa.Index("ix_velocity_payer", "tenant_id", "payer", "at_us"),
    sa.Index("ix_velocity_payee", "tenant_id", "payee", "at_us"),
    sa.Index("ix_velocity_device", "tenant_id", "device", "at_us"),
    sa.Index("ix_velocity_ip", "tenant_id", "ip", "at_us"),
    sa.Index("ix_velocity_at", "at_us"),
)

list_entries = sa.Table(
    "list_entries",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("list", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), primary_key=True),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("created_at_us", sa.BigInteger, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
)

reviews = sa.Table(
    "reviews",
    metadata,
    sa.Column("payment_id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at_us", sa.BigInteger, nullable=False),
    sa.Column("due_at_us", sa.BigInteger, nullable=False),
    sa.Column("resolved_at_us", sa.BigInteger, nullable=False),
    sa.Column("resolved_by", sa.String(128), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Index("ix_reviews_tenant_status", "tenant_id", "status", "payment_id"),
    sa.Index("ix_reviews_status_due", "status", "due_at_us"),
)

# The columns that hold a domain field of the same name as it is.
_CONTEXT_FIELDS = ("ip", "device_id", "country")
_REVIEW_FIELDS = ("created_at_us", "due_at_us", "resolved_at_us", "resolved_by", "note")


def decision_values(d: Decision) -> dict[str, Any]:
    """The row of decision `d`."""
    return {
        **attributes(d, DECISION_VALUES),
        **attributes(d.context, _CONTEXT_FIELDS),
        "outcome": d.outcome.value,
        "reasons": json.dumps([asdict(r) for r in d.reasons]),
    }


def decision_from_row(row: Mapping[Any, Any], prefix: str = "") -> Decision:
    """The decision in `row`, its columns named with `prefix`."""
    return Decision(
        **columns(row, DECISION_VALUES, prefix),
        outcome=Outcome(row[f"{prefix}outcome"]),
        reasons=tuple(Reason(**r) for r in json.loads(row[f"{prefix}reasons"])),
        context=PaymentContext(**columns(row, _CONTEXT_FIELDS, prefix)),
    )


def review_values(review: Review) -> dict[str, Any]:
    """The row of `review` (its decision is a row of its own)."""
    return {
        **attributes(review, ("payment_id", "tenant_id", *_REVIEW_FIELDS)),
        "status": review.status.value,
    }


def review_from_row(row: Mapping[Any, Any]) -> Review:
    """The review in `row`, joined with its decision's columns prefixed ``d_``."""
    return Review(
        decision=decision_from_row(row, "d_"),
        status=ReviewStatus(row["status"]),
        **columns(row, _REVIEW_FIELDS),
    )


def list_entry_from_row(row: Any) -> ListEntry:
    """The block/allow list entry a row of `list_entries` holds."""
    return ListEntry(**row._mapping)


def payer_stats_from_row(row: Any) -> PayerStats:
    """The payer statistics a row of `payer_stats` holds."""
    return PayerStats(**row._mapping)
