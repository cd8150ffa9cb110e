"""Rules engine: decisions keep their context and rules checksum; velocity entries,
payer history, lists and the review queue.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("decisions") as batch:
        batch.add_column(
            sa.Column("rules_checksum", sa.String(64), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("ip", sa.String(128), nullable=False, server_default=""))
        batch.add_column(sa.Column("device_id", sa.String(128), nullable=False, server_default=""))
        batch.add_column(sa.Column("country", sa.String(8), nullable=False, server_default=""))
    with op.batch_alter_table("payer_stats") as batch:
        batch.add_column(sa.Column("amount_mean", sa.Float, nullable=False, server_default="0"))
        batch.add_column(sa.Column("amount_m2", sa.Float, nullable=False, server_default="0"))
    op.create_table(
        "payers",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("payer_account_id", sa.String(64), primary_key=True),
        sa.Column("first_seen_us", sa.BigInteger, nullable=False),
        sa.Column("succeeded_count", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "payer_countries",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("payer_account_id", sa.String(64), primary_key=True),
        sa.Column("country", sa.String(8), primary_key=True),
        sa.Column("succeeded_count", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "velocity",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("payment_id", sa.String(64), primary_key=True),
        sa.Column("payer", sa.String(64), nullable=False),
        sa.Column("payee", sa.String(64), nullable=False),
        sa.Column("device", sa.String(128), nullable=False),
        sa.Column("ip", sa.String(128), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("at_us", sa.BigInteger, nullable=False),
    )
    for dim in ("payer", "payee", "device", "ip"):
        op.create_index(f"ix_velocity_{dim}", "velocity", ["tenant_id", dim, "at_us"])
    op.create_index("ix_velocity_at", "velocity", ["at_us"])
    op.create_table(
        "list_entries",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("list", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(256), primary_key=True),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
    )
    op.create_table(
        "reviews",
        sa.Column("payment_id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
        sa.Column("due_at_us", sa.BigInteger, nullable=False),
        sa.Column("resolved_at_us", sa.BigInteger, nullable=False),
        sa.Column("resolved_by", sa.String(128), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
    )
    op.create_index("ix_reviews_tenant_status", "reviews", ["tenant_id", "status", "payment_id"])
    op.create_index("ix_reviews_status_due", "reviews", ["status", "due_at_us"])


def downgrade() -> None:
    op.drop_index("ix_reviews_status_due", table_name="reviews")
    op.drop_index("ix_reviews_tenant_status", table_name="reviews")
    op.drop_table("reviews")
    op.drop_table("list_entries")
    op.drop_index("ix_velocity_at", table_name="velocity")
    for dim in ("payer", "payee", "device", "ip"):
        op.drop_index(f"ix_velocity_{dim}", table_name="velocity")
    op.drop_table("velocity")
    op.drop_table("payer_countries")
    op.drop_table("payers")
    with op.batch_alter_table("payer_stats") as batch:
        batch.drop_column("amount_m2")
        batch.drop_column("amount_mean")
    with op.batch_alter_table("decisions") as batch:
        for name in ("country", "device_id", "ip", "rules_checksum"):
            batch.drop_column(name)
