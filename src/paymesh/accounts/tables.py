"""The accounts service's tables (SQLAlchemy Core) and row <-> domain mapping."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from paymesh.accounts.domain import Account, AccountFlags, BankAccount, Transfer, TransferFlags
from paymesh.platform.outbox import inbox_table, outbox_table
from paymesh.platform.rows import attributes, columns

__all__ = [
    "account_from_row",
    "account_values",
    "accounts",
    "bank_values",
    "inbox",
    "is_pending",
    "ledger_batches",
    "ledger_head",
    "metadata",
    "outbox",
    "posts_amount",
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
    # The bank details (migration 0003): all three set, or all three NULL (none).
    sa.Column("bank_iban", sa.String(34), nullable=True),
    sa.Column("bank_bic", sa.String(11), nullable=True),
    sa.Column("bank_name", sa.String(70), nullable=True),
    # Serves lookups by tenant and ListAccounts' pages (by id within a tenant).
    sa.Index("ix_accounts_tenant_id_id", "tenant_id", "id"),
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
    # The ledger_batches row whose hash covers this transfer. Nullable only
    # because SQLite cannot add a NOT NULL column in place; every insert sets
    # it and `paymesh ledger verify` reports a transfer without one.
    sa.Column("batch_seq", sa.BigInteger, nullable=True),
    sa.Index("ix_transfers_debit_seq", "debit_account_id", "seq"),
    sa.Index("ix_transfers_credit_seq", "credit_account_id", "seq"),
    sa.Index(
        "ix_transfers_expires_at",
        "expires_at_us",
        postgresql_where=sa.text("expires_at_us IS NOT NULL"),
        sqlite_where=sa.text("expires_at_us IS NOT NULL"),
    ),
    sa.Index("ix_transfers_batch_seq", "batch_seq", "seq"),
)

# One row per committed batch of new transfers, linked by hash (domain/audit.py).
ledger_batches = sa.Table(
    "ledger_batches",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("transfer_count", sa.Integer, nullable=False),
    sa.Column("created_at_us", sa.BigInteger, nullable=False),
)

# The chain's head: exactly one row (id 1), locked FOR UPDATE by every writer
# of a batch as its last lock, which keeps the chain linear.
ledger_head = sa.Table(
    "ledger_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.CheckConstraint("id = 1", name="ck_ledger_head_single_row"),
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)

_LINKED, _PENDING, _POST, _VOID = 1, 2, 4, 8
# The bit of the flags column that holds each transfer flag.
_FLAG_BITS = {"linked": _LINKED, "pending": _PENDING, "post_pending": _POST, "void_pending": _VOID}


def _flags_int(f: TransferFlags) -> int:
    return sum(bit for name, bit in _FLAG_BITS.items() if getattr(f, name))


def _flags(n: int) -> TransferFlags:
    return TransferFlags(**{name: bool(n & bit) for name, bit in _FLAG_BITS.items()})


def posts_amount(t: sa.FromClause) -> sa.ColumnElement[bool]:
    """True for a transfer of `t` that posts its amount: single-phase or post_pending."""
    f = t.c.flags
    return sa.or_(f.bitwise_and(_PENDING | _POST | _VOID) == 0, f.bitwise_and(_POST) != 0)


def is_pending(t: sa.FromClause) -> sa.ColumnElement[bool]:
    """True for a pending transfer (a hold) of `t`."""
    return t.c.flags.bitwise_and(_PENDING) != 0


# The columns that hold a domain field of the same name as it is.
_ACCOUNT_FLAGS = ("debits_must_not_exceed_credits", "credits_must_not_exceed_debits")
_ACCOUNT_TEXT = ("id", "tenant_id", "currency", "code")
_ACCOUNT_INTS = ("debits_pending", "debits_posted", "credits_pending", "credits_posted")
_TRANSFER_TEXT = (
    "id",
    "tenant_id",
    "debit_account_id",
    "credit_account_id",
    "currency",
    "code",
    "reference",
)
_TRANSFER_INTS = ("amount", "timeout_seconds", "created_at_us")


def _ints(row: Mapping[Any, Any], names: Iterable[str]) -> dict[str, Any]:
    return {name: int(row[name]) for name in names}


# The fields of BankAccount, each in the column "bank_<field>".
_BANK_FIELDS = ("iban", "bic", "name")


def bank_values(bank: BankAccount | None) -> dict[str, Any]:
    """The bank details' columns of an account row (all NULL for none)."""
    return {f"bank_{name}": None if bank is None else getattr(bank, name) for name in _BANK_FIELDS}


def account_values(a: Account) -> dict[str, Any]:
    """The row of account `a`."""
    return {
        **attributes(a, (*_ACCOUNT_TEXT, *_ACCOUNT_INTS, "created_at_us")),
        **attributes(a.flags, _ACCOUNT_FLAGS),
        "metadata": json.dumps(dict(a.metadata), sort_keys=True, separators=(",", ":")),
        **bank_values(a.bank_account),
    }


def _bank_from_row(row: Mapping[Any, Any]) -> BankAccount | None:
    if "bank_iban" not in row or row["bank_iban"] is None:
        return None
    return BankAccount(**columns(row, _BANK_FIELDS, prefix="bank_"))


def account_from_row(row: Mapping[Any, Any]) -> Account:
    """The account in `row` (with empty metadata and no bank details when the row was read
    without them)."""
    return Account(
        **columns(row, _ACCOUNT_TEXT),
        **_ints(row, (*_ACCOUNT_INTS, "created_at_us")),
        flags=AccountFlags(**{name: bool(row[name]) for name in _ACCOUNT_FLAGS}),
        metadata=json.loads(row["metadata"]) if "metadata" in row else {},
        bank_account=_bank_from_row(row),
    )


def transfer_values(t: Transfer, batch_seq: int | None = None) -> dict[str, Any]:
    """The row of transfer `t` in batch `batch_seq` (without its seq)."""
    return {
        **attributes(t, (*_TRANSFER_TEXT, *_TRANSFER_INTS, "expires_at_us")),
        "flags": _flags_int(t.flags),
        "pending_id": t.pending_id or None,
        "batch_seq": batch_seq,
    }


def transfer_from_row(row: Mapping[Any, Any]) -> Transfer:
    """The transfer in `row`."""
    expires = row["expires_at_us"]
    return Transfer(
        **columns(row, _TRANSFER_TEXT),
        **_ints(row, _TRANSFER_INTS),
        flags=_flags(int(row["flags"])),
        pending_id=row["pending_id"] or "",
        expires_at_us=None if expires is None else int(expires),
    )
