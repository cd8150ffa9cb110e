"""An account's bank details (for settlement payouts by bank file): IBAN, BIC and the
holder's name, all three NULL when the account has none.

Nullable columns are added in place on SQLite and PostgreSQL (no table rewrite).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (("bank_iban", 34), ("bank_bic", 11), ("bank_name", 70))


def upgrade() -> None:
    for name, length in _COLUMNS:
        op.add_column("accounts", sa.Column(name, sa.String(length), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("accounts") as accounts:
        for name, _length in reversed(_COLUMNS):
            accounts.drop_column(name)
