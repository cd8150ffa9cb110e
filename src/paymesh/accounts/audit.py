"""``paymesh ledger verify``: check the ledger's invariants and its hash chain.

:func:`verify` reads one consistent snapshot (REPEATABLE READ on
PostgreSQL, one read transaction on SQLite) and checks:

1. per currency, the sum of ``debits_posted`` equals the sum of
   ``credits_posted`` over all accounts, and the same for pending;
2. every account's four balances equal the sums recomputed from its
   transfers (posted: single-phase and post_pending amounts; pending:
   pending transfers with no post or void), and no transfer names an
   unknown account. Both are GROUP BY queries that return only mismatches;
3. every transfer belongs to a batch, the batches have contiguous seqs from
   1, each links to the stored hash of the one before, each recomputes from
   its transfers (in insertion order) to its stored hash and count, and the
   head names the last batch. Batches and transfers are streamed in pages
   side by side, so memory does not grow with the ledger.

The chain detects any change to stored transfers and batches short of
rewriting every hash from the tampered batch on and the head; record the
head hash printed in the summary elsewhere to detect that too.

The running accounts service checks its ledger too, cheaply and
incrementally (:class:`PeriodicVerify`, every ``accounts.verify_interval_s``):
:func:`verify_since` checks check 1 (debits equal credits per currency, one
GROUP BY over the accounts) and check 3 from the last batch it verified to
the head, and sets ``paymesh_ledger_verify_problems`` to the problems found.
It skips check 2 (a pass over every transfer) and batches it verified
before; ``paymesh ledger verify`` does the whole audit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from paymesh.accounts.domain import GENESIS_HASH, BatchDigest
from paymesh.accounts.tables import (
    accounts,
    is_pending,
    ledger_batches,
    ledger_head,
    posts_amount,
    transfer_from_row,
    transfers,
)
from paymesh.platform.db import Database
from paymesh.platform.logging import get_logger
from paymesh.platform.loops import Periodic
from paymesh.platform.metrics import LEDGER_VERIFY_PROBLEMS

__all__ = ["Audit", "PeriodicVerify", "Problem", "verify", "verify_since"]

log = get_logger(__name__)

_BALANCES = ("debits_pending", "debits_posted", "credits_pending", "credits_posted")


@dataclass(frozen=True)
class Problem:
    """One broken invariant: what kind, about which object, expected vs found."""

    kind: str
    subject: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.subject}: {self.detail}"


@dataclass
class Audit:
    """What :func:`verify` checked and found."""

    problems: list[Problem] = field(default_factory=list)
    accounts: int = 0
    transfers: int = 0
    batches: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS_HASH

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def summary(self) -> str:
        """One line: what was checked, and the head to record elsewhere."""
        return (
            f"checked {self.accounts} accounts, {self.transfers} transfers, "
            f"{self.batches} batches; head seq {self.head_seq} hash {self.head_hash}"
        )


async def verify(db: Database, *, page_size: int = 1000) -> Audit:
    """Check the ledger in `db` (SQLite or PostgreSQL); never writes."""
    audit = Audit()
    async with _snapshot(db) as conn:
        await _check_currencies(conn, audit)
        await _check_accounts(conn, audit)
        await _check_unbatched(conn, audit, page_size)
        await _check_chain(conn, audit, page_size)
    return audit


async def verify_since(
    db: Database, *, after_seq: int = 0, after_hash: str = GENESIS_HASH, page_size: int = 1000
) -> Audit:
    """Check, in one snapshot, that debits equal credits per currency and that the chain
    runs from batch `after_seq` (whose hash is `after_hash`) to the head; never writes."""
    audit = Audit()
    async with _snapshot(db) as conn:
        await _check_currencies(conn, audit)
        await _check_chain(conn, audit, page_size, after_seq=after_seq, after_hash=after_hash)
    return audit


class PeriodicVerify:
    """Verifies the ledger incrementally every `interval_s` (see the module docstring).

    The first pass, at start, verifies the whole chain; each later one goes on
    from the head the last clean pass reached, so a pass costs what was
    appended since. A pass that finds problems leaves that mark where it was:
    the next one finds them again, and the gauge stays up until they are gone.
    `on_head` is told the head seq each pass saw.
    """

    def __init__(
        self,
        db: Database,
        *,
        interval_s: float,
        service: str,
        on_head: Callable[[int], None] | None = None,
    ) -> None:
        self._db = db
        self._on_head = on_head
        self._problems = LEDGER_VERIFY_PROBLEMS.labels(service=service)
        self._seq, self._hash = 0, GENESIS_HASH
        self._loop = Periodic("ledger-verify", self._step, interval_s=interval_s)

    async def run_once(self) -> Audit:
        """Verify what was appended since the last clean pass; set the problems gauge."""
        audit = await verify_since(self._db, after_seq=self._seq, after_hash=self._hash)
        self._problems.set(len(audit.problems))
        if audit.ok:
            self._seq, self._hash = audit.head_seq, audit.head_hash
        else:
            for problem in audit.problems[:20]:
                log.error("ledger_verify_problem", problem=str(problem))
        if self._on_head is not None:
            self._on_head(audit.head_seq)
        return audit

    async def _step(self) -> None:
        try:
            await self.run_once()
        except Exception as exc:  # the database is away: try again next time
            log.warning("ledger_verify_failed", error=type(exc).__name__)

    def start(self) -> None:
        """Verify in the background, starting now."""
        self._loop.start()

    async def stop(self) -> None:
        """Stop verifying."""
        await self._loop.stop()


@asynccontextmanager
async def _snapshot(db: Database) -> AsyncIterator[AsyncConnection]:
    if db.is_sqlite:  # one read transaction in WAL mode is a snapshot
        async with db.read(long=True) as conn:
            yield conn
        return
    async with db.engine.connect() as conn:
        snap = await conn.execution_options(
            isolation_level="REPEATABLE READ", postgresql_readonly=True
        )
        async with snap.begin():
            yield snap


async def _check_currencies(conn: AsyncConnection, audit: Audit) -> None:
    a = accounts
    q = (
        sa.select(
            a.c.currency,
            sa.func.count().label("n"),
            *(sa.func.coalesce(sa.func.sum(a.c[name]), 0).label(name) for name in _BALANCES),
        )
        .group_by(a.c.currency)
        .order_by(a.c.currency)
    )
    for row in (await conn.execute(q)).mappings():
        audit.accounts += int(row["n"])
        for kind in ("posted", "pending"):
            debits, credits = int(row[f"debits_{kind}"]), int(row[f"credits_{kind}"])
            if debits != credits:
                audit.problems.append(
                    Problem(
                        "currency_imbalance",
                        f"currency {row['currency']}",
                        f"sum of debits_{kind} {debits} != sum of credits_{kind} {credits} "
                        f"(difference {credits - debits})",
                    )
                )


def _legs() -> sa.Subquery:
    """Each transfer as two legs (debit side, credit side) with what it adds to each balance."""
    t, r = transfers, transfers.alias("resolution")
    posted = sa.case((posts_amount(t), t.c.amount), else_=0)
    open_hold = sa.and_(is_pending(t), ~sa.exists().where(r.c.pending_id == t.c.id))
    pending = sa.case((open_hold, t.c.amount), else_=0)
    zero = sa.literal(0, sa.BigInteger)
    adds = {"pending": pending, "posted": posted}

    def leg(account_id: sa.Column[str], side: str) -> sa.Select[Any]:
        """One side's leg: what it adds to that side's balances, zero to the other's."""
        return sa.select(
            account_id.label("account_id"),
            *(
                (adds[name.split("_")[1]] if name.startswith(side) else zero).label(name)
                for name in _BALANCES
            ),
        )

    debit, credit = leg(t.c.debit_account_id, "debits"), leg(t.c.credit_account_id, "credits")
    return sa.union_all(debit, credit).subquery("legs")


async def _check_accounts(conn: AsyncConnection, audit: Audit) -> None:
    legs = _legs()
    sums = (
        sa.select(legs.c.account_id, *(sa.func.sum(legs.c[name]).label(name) for name in _BALANCES))
        .group_by(legs.c.account_id)
        .subquery("sums")
    )
    a = accounts
    recomputed = {name: sa.func.coalesce(sums.c[name], 0) for name in _BALANCES}
    q = (
        sa.select(
            a.c.id,
            a.c.currency,
            *(a.c[name] for name in _BALANCES),
            *(recomputed[name].label(f"sum_{name}") for name in _BALANCES),
        )
        .select_from(a.outerjoin(sums, sums.c.account_id == a.c.id))
        .where(sa.or_(*(a.c[name] != recomputed[name] for name in _BALANCES)))
        .order_by(a.c.id)
    )
    for row in (await conn.execute(q)).mappings():
        for name in _BALANCES:
            found, expected = int(row[name]), int(row[f"sum_{name}"])
            if found != expected:
                audit.problems.append(
                    Problem(
                        "account_balance",
                        f"account {row['id']} ({row['currency']})",
                        f"{name} is {found}, its transfers sum to {expected} "
                        f"(difference {found - expected})",
                    )
                )
    orphans = (
        sa.select(legs.c.account_id, sa.func.count().label("n"))
        .where(~sa.exists().where(a.c.id == legs.c.account_id))
        .group_by(legs.c.account_id)
        .order_by(legs.c.account_id)
    )
    for row in (await conn.execute(orphans)).mappings():
        audit.problems.append(
            Problem(
                "unknown_account",
                f"account {row['account_id']}",
                f"named by {row['n']} transfer legs but does not exist",
            )
        )


async def _check_unbatched(conn: AsyncConnection, audit: Audit, page_size: int) -> None:
    t = transfers
    n = (
        await conn.execute(sa.select(sa.func.count()).select_from(t).where(t.c.batch_seq.is_(None)))
    ).scalar_one()
    audit.transfers += int(n)
    if not n:
        return
    ids = (
        await conn.execute(
            sa.select(t.c.id).where(t.c.batch_seq.is_(None)).order_by(t.c.seq).limit(page_size)
        )
    ).scalars()
    for transfer_id in ids:
        audit.problems.append(
            Problem("unbatched_transfer", f"transfer {transfer_id}", "belongs to no batch")
        )
    if n > page_size:
        audit.problems.append(
            Problem("unbatched_transfer", "transfers", f"{n - page_size} more belong to no batch")
        )


async def _paged(
    conn: AsyncConnection,
    query: Callable[[Any], sa.Select[Any]],
    key: Callable[[sa.RowMapping], Any],
) -> AsyncIterator[sa.RowMapping]:
    """Rows of `query(after)` page by page; `key` gives the next page's `after`."""
    after: Any = None
    while True:
        rows = (await conn.execute(query(after))).mappings().all()
        for row in rows:
            yield row
        if not rows:
            return
        after = key(rows[-1])


async def _check_chain(
    conn: AsyncConnection,
    audit: Audit,
    page_size: int,
    *,
    after_seq: int = 0,
    after_hash: str = GENESIS_HASH,
) -> None:
    """Check the batches after `after_seq` (the one before them has hash `after_hash`)."""
    b, t = ledger_batches, transfers

    # From the start (`paymesh ledger verify`), every row counts, even a seq below 1.
    whole = after_seq == 0

    def batch_page(after: int | None) -> sa.Select[Any]:
        q = sa.select(b).order_by(b.c.seq).limit(page_size)
        if after is None:
            return q if whole else q.where(b.c.seq > after_seq)
        return q.where(b.c.seq > after)

    def transfer_page(after: tuple[int, int] | None) -> sa.Select[Any]:
        batched = t.c.batch_seq.is_not(None) if whole else t.c.batch_seq > after_seq
        q = sa.select(t).where(batched).order_by(t.c.batch_seq, t.c.seq)
        if after is not None:
            q = q.where(sa.tuple_(t.c.batch_seq, t.c.seq) > sa.tuple_(*after))
        return q.limit(page_size)

    stream = _paged(conn, transfer_page, lambda r: (r["batch_seq"], r["seq"]))
    nxt = await anext(stream, None)
    expected_seq, prev_hash = after_seq + 1, after_hash

    async def skip_orphans(below: int | None) -> None:
        nonlocal nxt
        while nxt is not None and (below is None or nxt["batch_seq"] < below):
            audit.transfers += 1
            audit.problems.append(
                Problem(
                    "orphan_transfer",
                    f"transfer {nxt['id']}",
                    f"names batch {nxt['batch_seq']}, which does not exist",
                )
            )
            nxt = await anext(stream, None)

    async for batch in _paged(conn, batch_page, lambda r: r["seq"]):
        seq = int(batch["seq"])
        audit.batches += 1
        subject = f"batch {seq}"
        if seq != expected_seq:
            audit.problems.append(
                Problem("chain_gap", subject, f"expected seq {expected_seq}, found {seq}")
            )
        if batch["prev_hash"] != prev_hash:
            audit.problems.append(
                Problem(
                    "chain_link",
                    subject,
                    f"prev_hash {batch['prev_hash']} != hash of the batch before {prev_hash}",
                )
            )
        await skip_orphans(seq)
        digest = BatchDigest(batch["prev_hash"], seq)
        while nxt is not None and nxt["batch_seq"] == seq:
            digest.add(transfer_from_row(nxt))
            nxt = await anext(stream, None)
        audit.transfers += digest.count
        if digest.count != batch["transfer_count"]:
            audit.problems.append(
                Problem(
                    "batch_count",
                    subject,
                    f"transfer_count {batch['transfer_count']}, found {digest.count} transfers",
                )
            )
        if digest.hexdigest() != batch["hash"]:
            audit.problems.append(
                Problem(
                    "batch_hash",
                    subject,
                    f"stored hash {batch['hash']}, recomputed {digest.hexdigest()}: "
                    "a transfer of this batch was changed, removed or added",
                )
            )
        expected_seq, prev_hash = seq + 1, batch["hash"]
    await skip_orphans(None)
    await _check_head(conn, audit, expected_seq - 1, prev_hash)


async def _check_head(conn: AsyncConnection, audit: Audit, last_seq: int, last_hash: str) -> None:
    h = ledger_head
    rows = (await conn.execute(sa.select(h.c.id, h.c.seq, h.c.hash))).mappings().all()
    if len(rows) != 1:
        audit.problems.append(Problem("head", "ledger_head", f"{len(rows)} rows, expected 1"))
        return
    head = rows[0]
    audit.head_seq, audit.head_hash = int(head["seq"]), head["hash"]
    if (audit.head_seq, audit.head_hash) != (last_seq, last_hash):
        audit.problems.append(
            Problem(
                "head",
                "ledger_head",
                f"names batch {audit.head_seq} hash {audit.head_hash}, "
                f"the last batch is {last_seq} hash {last_hash}",
            )
        )
