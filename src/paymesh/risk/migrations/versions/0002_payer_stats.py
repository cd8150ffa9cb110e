"""The payers' history features and the inbox of the payment events that feed them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-01-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "payer_stats",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("payer_account_id", sa.String(64), primary_key=True),
        sa.Column("currency", sa.String(3), primary_key=True),
        sa.Column("succeeded_count", sa.BigInteger, nullable=False),
        sa.Column("succeeded_amount", sa.BigInteger, nullable=False),
        sa.Column("last_event_at_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(64), primary_key=True),
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("processed_at_us", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("inbox")
    op.drop_table("payer_stats")
