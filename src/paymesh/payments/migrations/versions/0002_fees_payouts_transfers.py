"""Fees, authorisation expiry, payouts and P2P transfers.

Revision ID: 0002
Revises: 0001
Create Date: 2026-02-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _saga_columns() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
        sa.Column("updated_at_us", sa.BigInteger, nullable=False),
        sa.Column("step", sa.String(16), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at_us", sa.BigInteger, nullable=False, server_default="0"),
    ]


def upgrade() -> None:
    with op.batch_alter_table("payments") as batch:
        batch.add_column(sa.Column("fee_fixed", sa.BigInteger, nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("fee_basis_points", sa.Integer, nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("expires_at_us", sa.BigInteger, nullable=False, server_default="0")
        )
    op.create_index("ix_payments_status_expires", "payments", ["status", "expires_at_us"])

    op.create_table(
        "payouts",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("failure_code", sa.String(64), nullable=False, server_default=""),
        *_saga_columns(),
    )
    op.create_index("ix_payouts_step", "payouts", ["step", "next_attempt_at_us"])

    op.create_table(
        "transfers",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("from_account_id", sa.Text, nullable=False),
        sa.Column("to_account_id", sa.Text, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("failure_code", sa.String(64), nullable=False, server_default=""),
        *_saga_columns(),
    )
    op.create_index("ix_transfers_step", "transfers", ["step", "next_attempt_at_us"])

    op.create_table(
        "tenant_fees",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("fixed", sa.BigInteger, nullable=False),
        sa.Column("basis_points", sa.Integer, nullable=False),
        sa.Column("updated_at_us", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("tenant_fees")
    op.drop_table("transfers")
    op.drop_table("payouts")
    op.drop_index("ix_payments_status_expires", "payments")
    with op.batch_alter_table("payments") as batch:
        batch.drop_column("expires_at_us")
        batch.drop_column("fee_basis_points")
        batch.drop_column("fee_fixed")
