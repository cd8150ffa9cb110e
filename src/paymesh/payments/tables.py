"""The payments service's tables (SQLAlchemy Core), declared on one ``metadata``.

Every saga row carries its status and the step in progress (``step``,
``attempts``, ``next_attempt_at_us``, ``step_started_at_us``); money is BigInteger minor units and
times are BigInteger unix microseconds. Migrations create exactly these.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from paymesh.platform.outbox import inbox_table, outbox_table

__all__ = [
    "SAGA_TABLES",
    "inbox",
    "metadata",
    "outbox",
    "payments",
    "payouts",
    "refunds",
    "tenant_fees",
    "topups",
    "transfers",
]

metadata = sa.MetaData()


def _saga_columns() -> list[sa.Column[Any]]:
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


payments = sa.Table(
    "payments",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("payer_account_id", sa.Text, nullable=False),
    sa.Column("payee_account_id", sa.Text, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("capture_method", sa.String(16), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("amount_captured", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("amount_refunded", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("fee", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("metadata", sa.Text, nullable=False, server_default="{}"),
    sa.Column("context", sa.Text, nullable=False, server_default="{}"),
    sa.Column("risk", sa.Text, nullable=True),
    sa.Column("failure_code", sa.String(64), nullable=False, server_default=""),
    sa.Column("failure_message", sa.Text, nullable=False, server_default=""),
    sa.Column("step_amount", sa.BigInteger, nullable=False, server_default="0"),
    *_saga_columns(),
    # 0002: the fee schedule the payment was made under, and its authorisation's end.
    sa.Column("fee_fixed", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("fee_basis_points", sa.Integer, nullable=False, server_default="0"),
    sa.Column("expires_at_us", sa.BigInteger, nullable=False, server_default="0"),
    # 0003: the caller's request id of the capture or cancel that began (a retry repeats it).
    sa.Column("capture_request_id", sa.String(64), nullable=False, server_default=""),
    sa.Column("cancel_request_id", sa.String(64), nullable=False, server_default=""),
    sa.Index("ix_payments_tenant_created", "tenant_id", "created_at_us", "id"),
    sa.Index("ix_payments_step", "step", "next_attempt_at_us"),
    sa.Index("ix_payments_status_expires", "status", "expires_at_us"),
)

refunds = sa.Table(
    "refunds",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("payment_id", sa.String(64), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("requested_amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("failure_code", sa.String(64), nullable=False, server_default=""),
    sa.Column("payer_account_id", sa.Text, nullable=False),
    sa.Column("payee_account_id", sa.Text, nullable=False),
    *_saga_columns(),
    sa.Index("ix_refunds_payment", "payment_id"),
    sa.Index("ix_refunds_step", "step", "next_attempt_at_us"),
    # 0006: the tenant's list, newest first.
    sa.Index("ix_refunds_tenant_created", "tenant_id", "created_at_us", "id"),
)

topups = sa.Table(
    "topups",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("account_id", sa.Text, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("failure_code", sa.String(64), nullable=False, server_default=""),
    *_saga_columns(),
    sa.Index("ix_topups_step", "step", "next_attempt_at_us"),
    # 0006: the tenant's list, newest first.
    sa.Index("ix_topups_tenant_created", "tenant_id", "created_at_us", "id"),
)

payouts = sa.Table(
    "payouts",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("account_id", sa.Text, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("failure_code", sa.String(64), nullable=False, server_default=""),
    *_saga_columns(),
    sa.Index("ix_payouts_step", "step", "next_attempt_at_us"),
    # 0006: the tenant's list, newest first.
    sa.Index("ix_payouts_tenant_created", "tenant_id", "created_at_us", "id"),
)

transfers = sa.Table(
    "transfers",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("from_account_id", sa.Text, nullable=False),
    sa.Column("to_account_id", sa.Text, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("failure_code", sa.String(64), nullable=False, server_default=""),
    *_saga_columns(),
    sa.Index("ix_transfers_step", "step", "next_attempt_at_us"),
    # 0006: the tenant's list, newest first.
    sa.Index("ix_transfers_tenant_created", "tenant_id", "created_at_us", "id"),
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

# The tables whose rows are sagas, by the kind of object they hold.
SAGA_TABLES = {
    "payment": payments,
    "refund": refunds,
    "topup": topups,
    "payout": payouts,
    "transfer": transfers,
}
