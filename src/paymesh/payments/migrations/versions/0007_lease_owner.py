"""Which payments process holds a saga step's lease (PostgreSQL: its liveness lock).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SAGA_TABLES = ("payments", "refunds", "topups", "payouts", "transfers")


def upgrade() -> None:
    for table in _SAGA_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("lease_owner", sa.BigInteger, nullable=True))


def downgrade() -> None:
    for table in _SAGA_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("lease_owner")
