"""The hash chain of batches, append-only transfers, accounts indexed by tenant and id.

Adds ``ledger_batches``, ``ledger_head`` and ``transfers.batch_seq``; chains
the transfers an existing database already holds into one genesis batch (in
``seq`` order); then installs triggers that refuse UPDATE and DELETE of
``transfers`` and ``ledger_batches`` on SQLite and PostgreSQL.

Revision ID: 0002
Revises: 0001
Create Date: 2026-02-01
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from paymesh.accounts.domain.audit import GENESIS_HASH, BatchDigest
from paymesh.accounts.tables import transfer_from_row

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY = ("transfers", "ledger_batches")
_PAGE = 1000

# PostgreSQL: one function, one row trigger (UPDATE, DELETE) and one statement
# trigger (TRUNCATE) per table. The error is SQLSTATE P0001, which the store
# never retries.
_PG_FUNCTION = """
CREATE FUNCTION accounts_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP;
END
$$
"""


def _pg_triggers(table: str) -> list[str]:
    return [
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION accounts_refuse_change()",
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION accounts_refuse_change()",
    ]


def _sqlite_triggers(table: str) -> list[str]:
    return [
        f"CREATE TRIGGER {table}_no_{op_.lower()} BEFORE {op_} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {op_} refused'); END"
        for op_ in ("UPDATE", "DELETE")
    ]


def _chain_existing_transfers(conn: sa.Connection) -> tuple[int, str]:
    """Put every existing transfer into batch 1 (seq order); return the new head."""
    transfers = sa.table(
        "transfers",
        *(
            sa.column(name)
            for name in (
                "seq", "id", "tenant_id", "debit_account_id", "credit_account_id", "amount",
                "currency", "flags", "pending_id", "timeout_seconds", "expires_at_us", "code",
                "reference", "created_at_us", "batch_seq",
            )
        ),
    )  # fmt: skip
    count = conn.execute(sa.select(sa.func.count()).select_from(transfers)).scalar_one()
    if not count:
        return 0, GENESIS_HASH
    conn.execute(transfers.update().values(batch_seq=1))
    digest = BatchDigest(GENESIS_HASH, 1)
    after = -1
    latest = 0
    while True:  # page through, so a large ledger is never in memory at once
        rows = (
            conn.execute(
                sa.select(transfers)
                .where(transfers.c.seq > after)
                .order_by(transfers.c.seq)
                .limit(_PAGE)
            )
            .mappings()
            .all()
        )
        if not rows:
            break
        for row in rows:
            t = transfer_from_row(row)
            digest.add(t)
            latest = max(latest, t.created_at_us)
        after = rows[-1]["seq"]
    batches = sa.table(
        "ledger_batches",
        sa.column("seq"),
        sa.column("prev_hash"),
        sa.column("hash"),
        sa.column("transfer_count"),
        sa.column("created_at_us"),
    )
    conn.execute(
        batches.insert().values(
            seq=1,
            prev_hash=GENESIS_HASH,
            hash=digest.hexdigest(),
            transfer_count=digest.count,
            created_at_us=latest or time.time_ns() // 1000,
        )
    )
    return 1, digest.hexdigest()


def upgrade() -> None:
    op.add_column("transfers", sa.Column("batch_seq", sa.BigInteger, nullable=True))
    op.create_index("ix_transfers_batch_seq", "transfers", ["batch_seq", "seq"])
    op.drop_index("ix_accounts_tenant_id", "accounts")
    op.create_index("ix_accounts_tenant_id_id", "accounts", ["tenant_id", "id"])
    op.create_table(
        "ledger_batches",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("transfer_count", sa.Integer, nullable=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "ledger_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_ledger_head_single_row"),
    )
    conn = op.get_bind()
    seq, head = _chain_existing_transfers(conn)
    conn.execute(
        sa.text("INSERT INTO ledger_head (id, seq, hash) VALUES (1, :seq, :hash)"),
        {"seq": seq, "hash": head},
    )
    if conn.dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        for table in APPEND_ONLY:
            for statement in _pg_triggers(table):
                op.execute(statement)
    else:
        for table in APPEND_ONLY:
            for statement in _sqlite_triggers(table):
                op.execute(statement)


def downgrade() -> None:
    conn = op.get_bind()
    for table in APPEND_ONLY:
        if conn.dialect.name == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
    if conn.dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS accounts_refuse_change()")
    op.drop_table("ledger_head")
    op.drop_table("ledger_batches")
    op.drop_index("ix_accounts_tenant_id_id", "accounts")
    op.create_index("ix_accounts_tenant_id", "accounts", ["tenant_id"])
    op.drop_index("ix_transfers_batch_seq", "transfers")
    op.drop_column("transfers", "batch_seq")
