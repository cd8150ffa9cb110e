"""The caller's request id of a payment's capture and cancel, so a retry is recognised.

Revision ID: 0003
Revises: 0002
Create Date: 2026-02-15
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("payments") as batch:
        batch.add_column(
            sa.Column("capture_request_id", sa.String(64), nullable=False, server_default="")
        )
        batch.add_column(
            sa.Column("cancel_request_id", sa.String(64), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("payments") as batch:
        batch.drop_column("cancel_request_id")
        batch.drop_column("capture_request_id")
