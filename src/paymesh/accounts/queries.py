"""Read-only ledger queries of the store: balances at a past instant, accounts by tenant."""

from __future__ import annotations

from dataclasses import replace

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from paymesh.accounts.domain import Account
from paymesh.accounts.errors import AccountNotFound, InvalidCursor
from paymesh.accounts.tables import (
    account_from_row,
    accounts,
    is_pending,
    posts_amount,
    transfers,
)

__all__ = ["balances_as_of", "list_accounts"]


def _side_sum(
    side: sa.Column[str], account_id: str, as_of_us: int, *, pending: bool
) -> sa.ScalarSelect[int]:
    """Sum of the amounts on one side of the account, posted or still pending at `as_of_us`."""
    t, r = transfers, transfers.alias("resolution")
    if pending:
        # A hold counts until a post or void created at or before the instant.
        kind = sa.and_(
            is_pending(t),
            ~sa.exists().where(r.c.pending_id == t.c.id, r.c.created_at_us <= as_of_us),
        )
    else:
        kind = posts_amount(t)
    return (
        sa.select(sa.func.coalesce(sa.func.sum(t.c.amount), 0))
        .where(side == account_id, t.c.created_at_us <= as_of_us, kind)
        .scalar_subquery()
    )


async def balances_as_of(
    conn: AsyncConnection, account_id: str, tenant_id: str, as_of_us: int
) -> Account:
    """The account with its four balances recomputed from transfers created by `as_of_us`.

    One statement. It reads every transfer of the account up to the instant
    (through the per-side indexes), so its cost grows with the account's history.
    """
    t = transfers
    q = sa.select(
        accounts,
        _side_sum(t.c.debit_account_id, account_id, as_of_us, pending=True).label("as_dp"),
        _side_sum(t.c.debit_account_id, account_id, as_of_us, pending=False).label("as_dq"),
        _side_sum(t.c.credit_account_id, account_id, as_of_us, pending=True).label("as_cp"),
        _side_sum(t.c.credit_account_id, account_id, as_of_us, pending=False).label("as_cq"),
    ).where(accounts.c.id == account_id)
    row = (await conn.execute(q)).mappings().one_or_none()
    if row is None or row["tenant_id"] != tenant_id:
        raise AccountNotFound(account_id)
    return replace(
        account_from_row(row),
        debits_pending=int(row["as_dp"]),
        debits_posted=int(row["as_dq"]),
        credits_pending=int(row["as_cp"]),
        credits_posted=int(row["as_cq"]),
    )


async def list_accounts(
    conn: AsyncConnection, tenant_id: str, limit: int, starting_after: str
) -> tuple[list[Account], bool]:
    """One page of the tenant's accounts in ascending id order, and whether more follow.

    Ids compare in the database's collation (code points on SQLite); the
    order is the same on every page, so keyset pagination on id is exact.
    """
    a = accounts
    q = sa.select(a).where(a.c.tenant_id == tenant_id)
    if starting_after:
        known = (
            await conn.execute(
                sa.select(a.c.id).where(a.c.tenant_id == tenant_id, a.c.id == starting_after)
            )
        ).scalar_one_or_none()
        if known is None:
            raise InvalidCursor(starting_after)
        q = q.where(a.c.id > starting_after)
    rows = (await conn.execute(q.order_by(a.c.id).limit(limit + 1))).mappings().all()
    return [account_from_row(r) for r in rows[:limit]], len(rows) > limit
