"""The console's optional second factor: each user's TOTP secret (sealed) and the last
time step it accepted, whether a session has passed it, and which roles require it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("console_users") as users:
        users.add_column(sa.Column("totp_secret", sa.Text, nullable=True))
        users.add_column(sa.Column("totp_last_step", sa.BigInteger, nullable=True))
    with op.batch_alter_table("console_sessions") as sessions:
        sessions.add_column(
            sa.Column("verified", sa.Boolean, nullable=False, server_default=sa.true())
        )
        sessions.add_column(sa.Column("totp_pending", sa.Text, nullable=True))
    op.create_table(
        "console_role_policies",
        sa.Column("role", sa.String(16), primary_key=True),
        sa.Column("totp_required", sa.Boolean, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("console_role_policies")
    with op.batch_alter_table("console_sessions") as sessions:
        sessions.drop_column("totp_pending")
        sessions.drop_column("verified")
    with op.batch_alter_table("console_users") as users:
        users.drop_column("totp_last_step")
        users.drop_column("totp_secret")
