"""The decisions table and the outbox.

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "decisions",
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
    )
    op.create_index("ix_decisions_tenant_decided", "decisions", ["tenant_id", "decided_at_us"])
    op.create_table(
        "outbox",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False, unique=True),
        sa.Column("topic", sa.String(128), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
        sa.Column("published_at_us", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_outbox_tenant_seq", "outbox", ["tenant_id", "seq"])


def downgrade() -> None:
    op.drop_index("ix_outbox_tenant_seq", table_name="outbox")
    op.drop_table("outbox")
    op.drop_index("ix_decisions_tenant_decided", table_name="decisions")
    op.drop_table("decisions")
