"""Settlement and reconciliation: runs, their lines and claimed items, payout batches,
bank statements, their entries and breaks; payout returns (a saga); tenants' settlement
settings. See paymesh.payments.settlement and docs/settlement.md.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bank_statements",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("statement_id", sa.String(length=140), nullable=False),
        sa.Column("account_iban", sa.String(length=34), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("from_date", sa.String(length=10), server_default="", nullable=False),
        sa.Column("to_date", sa.String(length=10), server_default="", nullable=False),
        sa.Column("entry_count", sa.Integer(), nullable=False),
        sa.Column("counts", sa.Text(), nullable=False),
        sa.Column("sums", sa.Text(), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "statement_id", name="uq_bank_statements_statement"),
    )
    op.create_index(
        "ix_bank_statements_tenant_created",
        "bank_statements",
        ["tenant_id", "created_at_us", "id"],
        unique=False,
    )
    op.create_table(
        "payout_batches",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("debtor_iban", sa.String(length=34), nullable=False),
        sa.Column("debtor_bic", sa.String(length=11), nullable=False),
        sa.Column("debtor_name", sa.String(length=70), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id"),
    )
    op.create_table(
        "payout_returns",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("reason", sa.String(length=8), server_default="", nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("failure_code", sa.String(length=64), server_default="", nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_us", sa.BigInteger(), nullable=False),
        sa.Column("step", sa.String(length=16), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at_us", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("step_started_at_us", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("lease_owner", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_payout_returns_step", "payout_returns", ["step", "next_attempt_at_us"], unique=False
    )
    op.create_table(
        "recon_breaks",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("statement_id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("expected_amount", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("reference", sa.String(length=140), server_default="", nullable=False),
        sa.Column("object_kind", sa.String(length=32), server_default="", nullable=False),
        sa.Column("object_id", sa.String(length=64), server_default="", nullable=False),
        sa.Column("credit", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("return_reason", sa.String(length=8), server_default="", nullable=False),
        sa.Column("booked_on", sa.String(length=10), server_default="", nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("resolution", sa.String(length=16), server_default="", nullable=False),
        sa.Column("resolved_object_id", sa.String(length=64), server_default="", nullable=False),
        sa.Column("note", sa.Text(), server_default="", nullable=False),
        sa.Column("resolved_by", sa.Text(), server_default="", nullable=False),
        sa.Column("resolved_at_us", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("transfer_id", sa.String(length=64), server_default="", nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_recon_breaks_object", "recon_breaks", ["tenant_id", "type", "object_id"], unique=False
    )
    op.create_index(
        "ix_recon_breaks_tenant_created",
        "recon_breaks",
        ["tenant_id", "created_at_us", "id"],
        unique=False,
    )
    op.create_table(
        "settlement_items",
        sa.Column("object_id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("payment_id", sa.String(length=64), nullable=False),
        sa.Column("gross", sa.BigInteger(), nullable=False),
        sa.Column("fee", sa.BigInteger(), nullable=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("transfer_ids", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("object_id", "type"),
    )
    op.create_index(
        "ix_settlement_items_run", "settlement_items", ["run_id", "account_id"], unique=False
    )
    op.create_table(
        "settlement_lines",
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("gross", sa.BigInteger(), nullable=False),
        sa.Column("refunds", sa.BigInteger(), nullable=False),
        sa.Column("fees", sa.BigInteger(), nullable=False),
        sa.Column("carried_in", sa.BigInteger(), nullable=False),
        sa.Column("net", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("payout_id", sa.String(length=64), nullable=True),
        sa.Column("bank_iban", sa.String(length=34), server_default="", nullable=False),
        sa.Column("bank_bic", sa.String(length=11), server_default="", nullable=False),
        sa.Column("bank_name", sa.String(length=70), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("run_id", "account_id"),
    )
    op.create_table(
        "settlement_runs",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("cutoff_us", sa.BigInteger(), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("payout_batch_id", sa.String(length=64), nullable=True),
        sa.Column("approved_by", sa.Text(), server_default="", nullable=False),
        sa.Column("approved_at_us", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("item_count", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "currency", "cutoff_us", name="uq_settlement_runs_cutoff"),
    )
    op.create_index(
        "ix_settlement_runs_tenant_created",
        "settlement_runs",
        ["tenant_id", "created_at_us", "id"],
        unique=False,
    )
    op.create_table(
        "settlement_settings",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("requires_approval", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("schedule_time", sa.String(length=5), server_default="", nullable=False),
        sa.Column("time_zone", sa.String(length=64), server_default="", nullable=False),
        sa.Column("schedule_currencies", sa.Text(), server_default="", nullable=False),
        sa.Column("debtor_iban", sa.String(length=34), server_default="", nullable=False),
        sa.Column("debtor_bic", sa.String(length=11), server_default="", nullable=False),
        sa.Column("debtor_name", sa.String(length=70), server_default="", nullable=False),
        sa.Column("updated_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id"),
    )
    op.create_table(
        "statement_entries",
        sa.Column("statement_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("credit", sa.Boolean(), nullable=False),
        sa.Column("booked_on", sa.String(length=10), nullable=False),
        sa.Column("end_to_end_id", sa.String(length=140), server_default="", nullable=False),
        sa.Column("reference", sa.String(length=140), server_default="", nullable=False),
        sa.Column("return_reason", sa.String(length=8), server_default="", nullable=False),
        sa.Column("result", sa.String(length=32), nullable=False),
        sa.Column("object_kind", sa.String(length=32), server_default="", nullable=False),
        sa.Column("object_id", sa.String(length=64), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("statement_id", "seq"),
    )
    op.create_index(
        "ix_statement_entries_object",
        "statement_entries",
        ["tenant_id", "object_id", "result"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_table("statement_entries")
    op.drop_table("settlement_settings")
    op.drop_table("settlement_runs")
    op.drop_table("settlement_lines")
    op.drop_table("settlement_items")
    op.drop_table("recon_breaks")
    op.drop_table("payout_returns")
    op.drop_table("payout_batches")
    op.drop_table("bank_statements")
