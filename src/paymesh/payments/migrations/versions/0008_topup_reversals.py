"""Top-up reversals: a succeeded top-up's money back to the funding source, once per top-up.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-12
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "topup_reversals",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("failure_code", sa.String(64), nullable=False, server_default=""),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
        sa.Column("updated_at_us", sa.BigInteger, nullable=False),
        sa.Column("step", sa.String(16), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at_us", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("step_started_at_us", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("lease_owner", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_topup_reversals_step", "topup_reversals", ["step", "next_attempt_at_us"])


def downgrade() -> None:
    op.drop_index("ix_topup_reversals_step", table_name="topup_reversals")
    op.drop_table("topup_reversals")
