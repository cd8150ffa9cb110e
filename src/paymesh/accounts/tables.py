"""The accounts service's tables (SQLAlchemy Core) and row <-> domain mapping."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from paymesh.accounts.domain import Account, AccountFlags, Transfer, TransferFlags
from paymesh.platform.outbox import inbox_table, outbox_table

__all__ = [
    "account_from_row",
    "account_values",
    "accounts",
    "inbox",
    "metadata",
    "outbox",
    "transfer_from_row",
    "transfer_values",
    "transfers",
]

metadata = sa.MetaData()

# A 64-bit sequence on PostgreSQL; SQLite's autoincrement needs INTEGER PRIMARY KEY.
_Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(128), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("debits_must_not_exceed_credits", sa.Boolean, nullable=False),
    sa.Column("credits_must_not_exceed_debits", sa.Boolean, nullable=False),
    sa.Column("debits_pending", sa.BigInteger, nullable=False),
    sa.Column("debits_posted", sa.BigInteger, nullable=False),
    sa.Column("credits_pending", sa.BigInteger, nullable=False),
    sa.Column("credits_posted", sa.BigInteger, nullable=False),
    sa.Column("code", sa.Text, nullable=False),
    sa.Column("metadata", sa.Text, nullable=False),
    sa.Column("created_at_us", sa.BigInteger, nullable=False),
    sa.Index("ix_accounts_tenant_id", "tenant_id"),
)

transfers = sa.Table(
    "transfers",
    metadata,
    sa.Column("seq", _Seq, primary_key=True, autoincrement=True),
    # Caller ids are at most 64 characters; expiry voids add ":expired".
    sa.Column("id", sa.String(96), nullable=False, unique=True),
    sa.Column("tenant_id", sa.String(128), nullable=False),
    sa.Column("debit_account_id", sa.String(64), nullable=False),
    sa.Column("credit_account_id", sa.String(64), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("flags", sa.Integer, nullable=False),
    # At most one post or void per pending transfer, enforced by the database.
    sa.Column("pending_id", sa.String(64), nullable=True, unique=True),
    sa.Column("timeout_seconds", sa.BigInteger, nullable=False),
    sa.Column("expires_at_us", sa.BigInteger, nullable=True),
    sa.Column("code", sa.Text, nullable=False),
    sa.Column("reference", sa.Text, nullable=False),
    sa.Column("created_at_us", sa.BigInteger, nullable=False),
    sa.Index("ix_transfers_debit_seq", "debit_account_id", "seq"),
    sa.Index("ix_transfers_credit_seq", "credit_account_id", "seq"),
    sa.Index(
        "ix_transfers_expires_at",
        "expires_at_us",
        postgresql_where=sa.text("expires_at_us IS NOT NULL"),
        sqlite_where=sa.text("expires_at_us IS NOT NULL"),
    ),
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)

_LINKED, _PENDING, _POST, _VOID = 1, 2, 4, 8


def _flags_int(f: TransferFlags) -> int:
    return (
        (_LINKED if f.linked else 0)
        | (_PENDING if f.pending else 0)
        | (_POST if f.post_pending else 0)
        | (_VOID if f.void_pending else 0)
    )


def _flags(n: int) -> TransferFlags:
    return TransferFlags(
        linked=bool(n & _LINKED),
        pending=bool(n & _PENDING),
        post_pending=bool(n & _POST),
        void_pending=bool(n & _VOID),
    )


def account_values(a: Account) -> dict[str, Any]:
    """The row of account `a`."""
    return {
        "id": a.id,
        "tenant_id": a.tenant_id,
        "currency": a.currency,
        "debits_must_not_exceed_credits": a.flags.debits_must_not_exceed_credits,
        "credits_must_not_exceed_debits": a.flags.credits_must_not_exceed_debits,
        "debits_pending": a.debits_pending,
        "debits_posted": a.debits_posted,
        "credits_pending": a.credits_pending,
        "credits_posted": a.credits_posted,
        "code": a.code,
        "metadata": json.dumps(dict(a.metadata), sort_keys=True, separators=(",", ":")),
        "created_at_us": a.created_at_us,
    }


def account_from_row(row: Mapping[Any, Any]) -> Account:
    """The account in `row`."""
    return Account(
        id=row["id"],
        tenant_id=row["tenant_id"],
        currency=row["currency"],
        flags=AccountFlags(
            debits_must_not_exceed_credits=bool(row["debits_must_not_exceed_credits"]),
            credits_must_not_exceed_debits=bool(row["credits_must_not_exceed_debits"]),
        ),
        debits_pending=int(row["debits_pending"]),
        debits_posted=int(row["debits_posted"]),
        credits_pending=int(row["credits_pending"]),
        credits_posted=int(row["credits_posted"]),
        code=row["code"],
        metadata=json.loads(row["metadata"]),
        created_at_us=int(row["created_at_us"]),
    )


def transfer_values(t: Transfer) -> dict[str, Any]:
    """The row of transfer `t` (without its seq)."""
    return {
        "id": t.id,
        "tenant_id": t.tenant_id,
        "debit_account_id": t.debit_account_id,
        "credit_account_id": t.credit_account_id,
        "amount": t.amount,
        "currency": t.currency,
        "flags": _flags_int(t.flags),
        "pending_id": t.pending_id or None,
        "timeout_seconds": t.timeout_seconds,
        "expires_at_us": t.expires_at_us,
        "code": t.code,
        "reference": t.reference,
        "created_at_us": t.created_at_us,
    }


def transfer_from_row(row: Mapping[Any, Any]) -> Transfer:
    """The transfer in `row`."""
    expires = row["expires_at_us"]
    return Transfer(
        id=row["id"],
        tenant_id=row["tenant_id"],
        debit_account_id=row["debit_account_id"],
        credit_account_id=row["credit_account_id"],
        amount=int(row["amount"]),
        currency=row["currency"],
        flags=_flags(int(row["flags"])),
        pending_id=row["pending_id"] or "",
        timeout_seconds=int(row["timeout_seconds"]),
        expires_at_us=None if expires is None else int(expires),
        code=row["code"],
        reference=row["reference"],
        created_at_us=int(row["created_at_us"]),
    )
