"""Indexes that serve the tenant's lists of refunds, top-ups, payouts and transfers.

Each list is newest first by (created_at_us, id) within a tenant, as payments'.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("refunds", "topups", "payouts", "transfers")


def upgrade() -> None:
    for table in TABLES:
        op.create_index(f"ix_{table}_tenant_created", table, ["tenant_id", "created_at_us", "id"])


def downgrade() -> None:
    for table in TABLES:
        op.drop_index(f"ix_{table}_tenant_created", table_name=table)
