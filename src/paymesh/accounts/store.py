"""The ledger's persistence: SQL (SQLite and PostgreSQL) around the pure domain.

One batch is one database transaction with a constant number of round
trips, whatever its size:

1. read the pending transfers the batch names (immutable, no lock needed),
   to learn which accounts a post or void touches;
2. lock every involved account, ``SELECT ... ORDER BY id FOR UPDATE`` on
   PostgreSQL. The fixed order means two batches that move money in opposite
   directions between the same accounts queue instead of deadlocking. SQLite
   ignores ``FOR UPDATE``; its ``BEGIN IMMEDIATE`` already serialises writers;
3. read, under those locks, the transfers whose id or pending_id the batch
   names (a concurrent post of the same hold has committed or waits);
4. run the domain and update the balances that changed (one executemany);
5. append the batch to the hash chain (only when it created transfers): lock
   the single ``ledger_head`` row ``FOR UPDATE``, bulk-insert the new
   transfers stamped with the next batch seq, then insert the
   ``ledger_batches`` row and move the head (one statement on PostgreSQL, a
   CTE; two on SQLite). That is two extra round trips per batch on
   PostgreSQL, whatever its size.

The head is the LAST lock a transaction takes, after its accounts: every
writer locks accounts (sorted) then the head, and one holding the head never
waits for an account, so the two cannot deadlock; and the head, which every
batch needs, is held only for the inserts and the commit. Batches therefore
reach the chain in commit order, each seq one above the last.

A unique violation (the same new transfer id raced in by a batch on other
accounts, or a second post of a hold) rolls the batch back and runs it
again, where the domain answers ``exists`` or ``already_posted``.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from paymesh.accounts import domain, events, queries
from paymesh.accounts.domain import (
    Account,
    AccountsOutcome,
    BankAccount,
    LedgerState,
    Transfer,
    TransfersOutcome,
    batch_hash,
)
from paymesh.accounts.errors import AccountNotFound, InvalidCursor
from paymesh.accounts.ports import Entry
from paymesh.accounts.tables import (
    account_from_row,
    account_values,
    accounts,
    bank_values,
    ledger_batches,
    ledger_head,
    outbox,
    transfer_from_row,
    transfer_values,
    transfers,
)
from paymesh.platform.db import Database
from paymesh.platform.metrics import LEDGER_BATCH_TRANSFERS, LEDGER_CHAIN_HEAD_SEQ, LEDGER_TRANSFERS
from paymesh.platform.outbox import append
from paymesh.platform.statements import insert

__all__ = ["SqlAccountsStore"]

_T = TypeVar("_T")
_CHUNK = 1000  # ids per IN (...) list, far below every driver's parameter limit
_ATTEMPTS = 5
_RETRY_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock detected


def _chunks(values: Iterable[str]) -> list[list[str]]:
    items = sorted(set(values))
    return [items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK)]


def _retryable(exc: sa.exc.DBAPIError) -> bool:
    if isinstance(exc, sa.exc.IntegrityError):
        return True
    orig = exc.orig
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return state in _RETRY_SQLSTATES


SERVICE = "accounts"
_BATCH_SIZES = LEDGER_BATCH_TRANSFERS.labels(service=SERVICE)
_HEAD_SEQ = LEDGER_CHAIN_HEAD_SEQ.labels(service=SERVICE)


@functools.cache
def _result(code: str) -> Any:
    return LEDGER_TRANSFERS.labels(service=SERVICE, result=code)


class SqlAccountsStore:
    """The ledger on a :class:`Database` (SQLite or PostgreSQL).

    After each committed ``create_transfers`` transaction it counts every
    transfer's result code, observes the transaction's size (a group commit's
    merged batch), and, when a batch joined the hash chain, sets the chain's
    head seq (the highest this process committed: two commit workers may
    finish out of order).
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._head_seq = 0

    def chain_head(self, seq: int) -> None:
        """Report `seq` as the chain's head, unless a later one was reported already."""
        if seq > self._head_seq:
            self._head_seq = seq
            _HEAD_SEQ.set(seq)

    async def _write(self, work: Callable[[AsyncConnection], Awaitable[_T]]) -> _T:
        for attempt in range(_ATTEMPTS):
            try:
                async with self.db.transaction() as conn:
                    return await work(conn)
            except sa.exc.DBAPIError as exc:
                if attempt == _ATTEMPTS - 1 or not _retryable(exc):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def create_accounts(
        self, batch: Sequence[Account], tenant_id: str, now_us: int
    ) -> AccountsOutcome:
        """Create the accounts of `batch` for `tenant_id` in one transaction."""

        async def work(conn: AsyncConnection) -> AccountsOutcome:
            existing = await _accounts_by_id(conn, [a.id for a in batch], lock=False)
            outcome = domain.create_accounts(existing, batch, tenant_id, now_us)
            if outcome.created:
                await conn.execute(insert(accounts), [account_values(a) for a in outcome.created])
            return outcome

        return await self._write(work)

    async def lookup_accounts(self, ids: Sequence[str], tenant_id: str) -> list[Account]:
        """The caller's accounts among `ids`, in request order, each once."""
        async with self.db.read() as conn:
            found = await _accounts_by_id(conn, ids, lock=False)
        return _in_order(ids, {k: v for k, v in found.items() if v.tenant_id == tenant_id})

    async def set_bank_account(
        self, account_id: str, tenant_id: str, bank: BankAccount | None
    ) -> Account:
        """Set (None: remove) the bank details of the tenant's account; the account as it
        is then. :class:`AccountNotFound` for an unknown or another tenant's account."""

        async def work(conn: AsyncConnection) -> Account:
            mine = (accounts.c.id == account_id) & (accounts.c.tenant_id == tenant_id)
            await conn.execute(accounts.update().where(mine).values(**bank_values(bank)))
            row = (await conn.execute(sa.select(accounts).where(mine))).mappings().one_or_none()
            if row is None:
                raise AccountNotFound(account_id)
            return account_from_row(row)

        return await self._write(work)

    async def create_transfers(
        self, batch: Sequence[Transfer], tenant_id: str | None, now_us: int
    ) -> TransfersOutcome:
        """Decide and apply `batch` for `tenant_id` (None: each item's own) in one transaction."""
        appended = 0  # the seq of the batch the committed attempt appended (0: none)

        async def work(conn: AsyncConnection) -> TransfersOutcome:
            pending_ids = {t.pending_id for t in batch if t.pending_id}
            pendings = await _transfers_where(conn, transfers.c.id, pending_ids)
            names = {t.debit_account_id for t in batch} | {t.credit_account_id for t in batch}
            for p in pendings:
                names |= {p.debit_account_id, p.credit_account_id}
            locked = await _accounts_by_id(conn, names, lock=True)
            known = await _transfers_where(
                conn, transfers.c.id, {t.id for t in batch} | pending_ids
            )
            done = await _transfers_where(conn, transfers.c.pending_id, pending_ids)
            state = LedgerState(
                accounts=locked,
                transfers={t.id: t for t in known},
                resolutions={t.pending_id: t for t in done},
            )
            outcome = domain.create_transfers(state, batch, tenant_id, now_us)
            nonlocal appended
            appended = await _apply(conn, outcome, now_us)
            return outcome

        outcome = await self._write(work)
        for result in outcome.results:
            _result(result.value).inc()
        _BATCH_SIZES.observe(len(batch))
        self.chain_head(appended)
        return outcome

    async def lookup_transfers(self, ids: Sequence[str], tenant_id: str) -> list[Transfer]:
        """The caller's transfers among `ids`, in request order, each once."""
        async with self.db.read() as conn:
            found = await _transfers_where(conn, transfers.c.id, ids)
        return _in_order(ids, {t.id: t for t in found if t.tenant_id == tenant_id})

    async def list_entries(
        self, account_id: str, tenant_id: str, limit: int, starting_after: str
    ) -> tuple[list[Entry], bool]:
        """The account's entries, newest first; raise when the account is not the caller's."""
        t = transfers
        async with self.db.read() as conn:
            owner = (
                await conn.execute(
                    sa.select(accounts.c.tenant_id).where(accounts.c.id == account_id)
                )
            ).scalar_one_or_none()
            if owner != tenant_id:
                raise AccountNotFound(account_id)
            before: int | None = None
            if starting_after:
                before = (
                    await conn.execute(
                        sa.select(t.c.seq).where(
                            t.c.id == starting_after,
                            sa.or_(
                                t.c.debit_account_id == account_id,
                                t.c.credit_account_id == account_id,
                            ),
                        )
                    )
                ).scalar_one_or_none()
                if before is None:
                    raise InvalidCursor(starting_after)
            # One index range per side, merged: cheaper than an OR over two indexes.
            sides = []
            for column in (t.c.debit_account_id, t.c.credit_account_id):
                q = sa.select(t).where(column == account_id)
                if before is not None:
                    q = q.where(t.c.seq < before)
                sides.append(sa.select(q.order_by(t.c.seq.desc()).limit(limit + 1).subquery()))
            merged = sa.union_all(*sides).subquery()
            rows = (
                (
                    await conn.execute(
                        sa.select(merged).order_by(merged.c.seq.desc()).limit(limit + 1)
                    )
                )
                .mappings()
                .all()
            )
            page = [transfer_from_row(r) for r in rows[:limit]]
            # A hold shows how it ended: the post or void that names it, if any.
            holds = {tr.id for tr in page if tr.flags.pending}
            resolved = {
                r.pending_id: r for r in await _transfers_where(conn, t.c.pending_id, holds)
            }
        entries = [
            Entry(
                tr,
                "debit" if tr.debit_account_id == account_id else "credit",
                domain.transfer_status(tr, resolved.get(tr.id)),
            )
            for tr in page
        ]
        return entries, len(rows) > limit

    async def balances_as_of(self, account_id: str, tenant_id: str, as_of_us: int) -> Account:
        """The caller's account with its balances as of `as_of_us`; raise when not the caller's."""
        async with self.db.read(long=True) as conn:  # sums the account's whole history
            return await queries.balances_as_of(conn, account_id, tenant_id, as_of_us)

    async def list_accounts(
        self, tenant_id: str, limit: int, starting_after: str
    ) -> tuple[list[Account], bool]:
        """One page of the tenant's accounts by ascending id, and whether more follow."""
        async with self.db.read() as conn:
            return await queries.list_accounts(conn, tenant_id, limit, starting_after)

    async def expire_due(self, now_us: int, limit: int) -> list[Transfer]:
        """Void up to `limit` holds expired at `now_us`, each with a ``transfer.expired`` event."""
        t, r = transfers, transfers.alias("resolution")
        appended = 0

        async def work(conn: AsyncConnection) -> list[Transfer]:
            unresolved = ~sa.exists().where(r.c.pending_id == t.c.id)
            rows = (
                (
                    await conn.execute(
                        sa.select(t)
                        .where(t.c.expires_at_us.is_not(None), t.c.expires_at_us <= now_us)
                        .where(unresolved)
                        .order_by(t.c.expires_at_us)
                        .limit(limit)
                    )
                )
                .mappings()
                .all()
            )
            if not rows:
                return []
            due = [transfer_from_row(row) for row in rows]
            names = {p.debit_account_id for p in due} | {p.credit_account_id for p in due}
            locked = await _accounts_by_id(conn, names, lock=True)
            ids = {p.id for p in due}
            done = await _transfers_where(conn, transfers.c.pending_id, ids)
            known = await _transfers_where(
                conn, transfers.c.id, {domain.expiry_void(p).id for p in due}
            )
            state = LedgerState(
                accounts=locked,
                transfers={**{p.id: p for p in due}, **{k.id: k for k in known}},
                resolutions={d.pending_id: d for d in done},
            )
            outcome = domain.expire_pending(state, due, now_us)
            # Events first: the chain's head, taken in _apply, is held as briefly as possible.
            for void in outcome.created:
                await append(conn, outbox, events.TOPIC, events.transfer_expired(void))
            nonlocal appended
            appended = await _apply(conn, outcome, now_us)
            return outcome.created

        created = await self._write(work)
        self.chain_head(appended)
        return created


def _in_order(ids: Sequence[str], found: dict[str, _T]) -> list[_T]:
    seen: set[str] = set()
    out: list[_T] = []
    for i in ids:
        if i in found and i not in seen:
            seen.add(i)
            out.append(found[i])
    return out


_NOT_LOCKED = frozenset({"metadata", "bank_iban", "bank_bic", "bank_name"})


@functools.cache
def _accounts_query(lock: bool, dialect: str) -> sa.Select[Any]:
    """The accounts whose id is in the expanding parameter ``ids``, in id order."""
    # Python sorts by code point, as SQLite's BINARY and PostgreSQL's "C" collation
    # do, so chunks and the rows inside them are locked in one global order.
    key = accounts.c.id if dialect == "sqlite" else accounts.c.id.collate("C")
    # Locked accounts are read to move money, which never looks at metadata or bank
    # details: leave them out rather than decode a JSON document per account.
    columns = [c for c in accounts.c if c.name not in _NOT_LOCKED] if lock else list(accounts.c)
    ids: sa.BindParameter[str] = sa.bindparam("ids", expanding=True)
    query = sa.select(*columns).where(accounts.c.id.in_(ids)).order_by(key)
    return query.with_for_update() if lock else query


@functools.cache
def _transfers_query(column: str) -> sa.Select[Any]:
    """The transfers whose `column` is in the expanding parameter ``values``."""
    return sa.select(transfers).where(
        transfers.c[column].in_(sa.bindparam("values", expanding=True))
    )


async def _accounts_by_id(
    conn: AsyncConnection, ids: Iterable[str], *, lock: bool
) -> dict[str, Account]:
    found: dict[str, Account] = {}
    query = _accounts_query(lock, conn.dialect.name)
    for chunk in _chunks(ids):
        rows = (await conn.execute(query, {"ids": chunk})).mappings().all()
        found.update((row["id"], account_from_row(row)) for row in rows)
    return found


async def _transfers_where(
    conn: AsyncConnection, column: sa.Column[Any], values: Iterable[str]
) -> list[Transfer]:
    found: list[Transfer] = []
    query = _transfers_query(column.name)
    for chunk in _chunks(values):
        rows = (await conn.execute(query, {"values": chunk})).mappings()
        found.extend(transfer_from_row(row) for row in rows)
    return found


# Statements of a batch, built once (platform/statements.py says why).
_SET_BALANCES = (
    accounts.update()
    .where(accounts.c.id == sa.bindparam("b_id"))
    .values(
        debits_pending=sa.bindparam("b_dp"),
        debits_posted=sa.bindparam("b_dq"),
        credits_pending=sa.bindparam("b_cp"),
        credits_posted=sa.bindparam("b_cq"),
    )
)
_HEAD = (
    sa.select(ledger_head.c.seq, ledger_head.c.hash).where(ledger_head.c.id == 1).with_for_update()
)
_MOVE_HEAD = (
    ledger_head.update()
    .where(ledger_head.c.id == 1)
    .values(seq=sa.bindparam("b_seq"), hash=sa.bindparam("b_hash"))
)
_RECORD_BATCH = ledger_batches.insert().values(
    seq=sa.bindparam("b_seq"),
    prev_hash=sa.bindparam("b_prev"),
    hash=sa.bindparam("b_hash"),
    transfer_count=sa.bindparam("b_count"),
    created_at_us=sa.bindparam("b_at"),
)
# PostgreSQL: the record and the head's move in one statement.
_RECORD_AND_MOVE = _RECORD_BATCH.add_cte(_MOVE_HEAD.cte("moved_head"))


async def _apply(conn: AsyncConnection, outcome: TransfersOutcome, now_us: int) -> int:
    """Write the new balances, then append the new transfers to the chain as one batch;
    the batch's seq (0 when nothing was created)."""
    if outcome.accounts:
        await conn.execute(
            _SET_BALANCES,
            [
                {
                    "b_id": acc.id,
                    "b_dp": acc.debits_pending,
                    "b_dq": acc.debits_posted,
                    "b_cp": acc.credits_pending,
                    "b_cq": acc.credits_posted,
                }
                for acc in outcome.accounts.values()
            ],
        )
    if not outcome.created:
        return 0
    return await _append_batch(conn, outcome.created, now_us)


async def _append_batch(conn: AsyncConnection, created: Sequence[Transfer], now_us: int) -> int:
    """Insert `created` as the next batch of the hash chain (the head is the last lock);
    its seq."""
    head = (await conn.execute(_HEAD)).one()
    seq = int(head.seq) + 1
    digest = batch_hash(head.hash, seq, created)
    await conn.execute(insert(transfers), [transfer_values(t, seq) for t in created])
    params = {
        "b_seq": seq,
        "b_prev": head.hash,
        "b_hash": digest,
        "b_count": len(created),
        "b_at": now_us,
    }
    if conn.dialect.name == "postgresql":
        await conn.execute(_RECORD_AND_MOVE, params)
    else:
        await conn.execute(_RECORD_BATCH, params)
        await conn.execute(_MOVE_HEAD, params)
    return seq
