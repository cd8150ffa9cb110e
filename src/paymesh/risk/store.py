"""Where risk keeps its decisions, reviews and lists, SQLAlchemy Core on SQLite or
PostgreSQL (the features live in :mod:`paymesh.risk.features`).

One decision per payment id (the primary key). :meth:`SqlRiskStore.add`
inserts with ON CONFLICT DO NOTHING and, when another caller won the race,
reads the winner back in the same transaction: on PostgreSQL the conflicting
insert waits for the winner to commit and READ COMMITTED lets the next
statement see it; on SQLite writers are serialised by BEGIN IMMEDIATE. The
``risk.decision_made`` event, and the review a ``review`` decision opens, are
written only by the winner, in its transaction. Once :meth:`SqlRiskStore.start`
ran, concurrent adds are group-committed (one worker, many decisions per
transaction; each caller answered after its decision committed).

A review is resolved by a conditional update (``WHERE status = 'open'``) and
its event is appended only when that update changed the row, so two replicas
(or an operator and the timeout sweeper) never both resolve one review.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from paymesh.contracts.events import TOPIC_RISK, Event
from paymesh.platform import statements
from paymesh.platform.db import Database
from paymesh.platform.logging import get_logger
from paymesh.platform.loops import Background
from paymesh.platform.outbox import append
from paymesh.risk.domain import (
    Decision,
    ListEntry,
    Review,
    ReviewStatus,
)
from paymesh.risk.features import list_matches, record_entry
from paymesh.risk.tables import (
    decision_from_row,
    decision_values,
    decisions,
    list_entries,
    list_entry_from_row,
    outbox,
    review_from_row,
    review_values,
    reviews,
)

__all__ = ["SqlRiskStore"]


log = get_logger(__name__)


_MAX_GROUP = 256


@dataclass
class _Pending:
    decision: Decision
    event: Event
    review: Review | None
    velocity_at_us: int | None
    done: asyncio.Future[Decision] | None = None


def _insert(conn: AsyncConnection) -> Any:
    return sqlite_insert if conn.dialect.name == "sqlite" else pg_insert


class SqlRiskStore:
    """Decisions, reviews and lists on a SQLite or PostgreSQL database."""

    def __init__(self, db: Database, *, committed: Callable[[], None] | None = None) -> None:
        # `committed` is told when rows and their events have committed (the app
        # points it at the outbox relay so it publishes at once).
        self._db = db
        self._committed = committed
        self._queue: deque[_Pending] = deque()
        self._wake = asyncio.Event()
        self._worker = Background("risk-decisions-group-commit")

    def _notify(self) -> None:
        if self._committed is not None:
            self._committed()

    # --- decisions ---------------------------------------------------------

    async def get(self, payment_id: str) -> Decision | None:
        async with self._db.read() as conn:
            return await _select(conn, payment_id)

    async def add(
        self,
        decision: Decision,
        event: Event,
        review: Review | None = None,
        *,
        velocity_at_us: int | None = None,
    ) -> Decision:
        item = _Pending(decision, event, review, velocity_at_us)
        if not self._worker.running:
            [stored] = await self._write([item])
            return stored
        item.done = asyncio.get_running_loop().create_future()
        self._queue.append(item)
        self._wake.set()
        return await item.done

    def start(self) -> None:
        """Group commit: concurrent adds are written by one worker, many per transaction.

        A commit (an fsync) costs far more than a decision, so what arrives while a
        transaction runs goes into the next one: batches grow with load and stay at
        one when idle. Each caller is answered once its decision has committed.
        """
        self._worker.spawn(self._work())

    async def stop(self) -> None:
        """Stop the worker; adds still queued fail (Decide is idempotent: retry)."""
        await self._worker.stop()
        while self._queue:
            item = self._queue.popleft()
            if item.done is not None and not item.done.done():
                item.done.set_exception(RuntimeError("risk is stopping"))

    async def _work(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                taken: list[_Pending] = []
                while self._queue and len(taken) < _MAX_GROUP:
                    item = self._queue.popleft()
                    if item.done is not None and not item.done.cancelled():
                        taken.append(item)
                if not taken:
                    continue
                try:
                    stored = await self._write(taken)
                except asyncio.CancelledError:
                    for item in taken:
                        if item.done is not None and not item.done.done():
                            item.done.set_exception(RuntimeError("risk is stopping"))
                    raise
                except Exception as exc:
                    log.warning("risk_group_commit_failed", callers=len(taken), error=repr(exc))
                    for item in taken:
                        if item.done is not None and not item.done.done():
                            item.done.set_exception(exc)
                    continue
                for item, result in zip(taken, stored, strict=True):
                    if item.done is not None and not item.done.done():
                        item.done.set_result(result)

    async def _write(self, items: list[_Pending]) -> list[Decision]:
        stored: list[Decision] = []
        fresh = False
        async with self._db.transaction() as conn:
            for item in items:
                decision = item.decision
                result = await conn.execute(
                    statements.insert_new(decisions, conn.dialect.name), decision_values(decision)
                )
                if result.rowcount == 1:
                    await append(
                        conn, outbox, TOPIC_RISK, item.event, now_us=decision.decided_at_us
                    )
                    if item.review is not None:
                        await conn.execute(reviews.insert().values(review_values(item.review)))
                    if item.velocity_at_us is not None:
                        await record_entry(conn, decision.payment(), item.velocity_at_us)
                    stored.append(decision)
                    fresh = True
                    continue
                winner = await _select(conn, decision.payment_id)
                if winner is None:  # pragma: no cover - a conflict means a committed row exists
                    raise RuntimeError(f"decision for {decision.payment_id} vanished")
                stored.append(winner)
        if fresh:
            self._notify()
        return stored

    # --- reviews -----------------------------------------------------------

    async def get_review(self, payment_id: str) -> Review | None:
        async with self._db.read() as conn:
            rows = await _reviews(conn, reviews.c.payment_id == payment_id)
        return rows[0] if rows else None

    async def list_reviews(
        self, tenant_id: str, status: ReviewStatus, *, limit: int, starting_after: str
    ) -> tuple[list[Review], bool]:
        r = reviews.c
        where = sa.and_(r.tenant_id == tenant_id, r.status == status.value)
        if starting_after:
            where = sa.and_(where, r.payment_id > starting_after)
        async with self._db.read() as conn:
            rows = await _reviews(conn, where, order=r.payment_id, limit=limit + 1)
        return rows[:limit], len(rows) > limit

    async def resolve_review(self, resolved: Review, event: Event) -> bool:
        r = reviews.c
        async with self._db.transaction() as conn:
            result = await conn.execute(
                reviews.update()
                .where(r.payment_id == resolved.payment_id, r.status == ReviewStatus.OPEN.value)
                .values(
                    status=resolved.status.value,
                    resolved_at_us=resolved.resolved_at_us,
                    resolved_by=resolved.resolved_by,
                    note=resolved.note,
                )
            )
            if result.rowcount != 1:
                return False
            await append(conn, outbox, TOPIC_RISK, event, now_us=resolved.resolved_at_us)
        self._notify()
        return True

    async def due_reviews(self, now_us: int, *, limit: int) -> list[Review]:
        r = reviews.c
        where = sa.and_(r.status == ReviewStatus.OPEN.value, r.due_at_us <= now_us)
        async with self._db.read() as conn:
            return await _reviews(conn, where, order=r.due_at_us, limit=limit)

    # --- lists -------------------------------------------------------------

    async def add_entry(self, entry: ListEntry) -> ListEntry:
        async with self._db.transaction() as conn:
            await conn.execute(
                _insert(conn)(list_entries).values(asdict(entry)).on_conflict_do_nothing()
            )
            l = list_entries.c  # noqa: E741
            row = (
                await conn.execute(
                    sa.select(list_entries).where(
                        l.tenant_id == entry.tenant_id, l.list == entry.list, l.value == entry.value
                    )
                )
            ).one()
        return list_entry_from_row(row)

    async def remove_entry(self, tenant_id: str, list_name: str, value: str) -> bool:
        l = list_entries.c  # noqa: E741
        async with self._db.transaction() as conn:
            result = await conn.execute(
                list_entries.delete().where(
                    l.tenant_id == tenant_id, l.list == list_name, l.value == value
                )
            )
        return bool(result.rowcount)

    async def list_entries(
        self, tenant_id: str, list_name: str, *, limit: int, starting_after: str
    ) -> tuple[list[ListEntry], bool]:
        l = list_entries.c  # noqa: E741
        query = sa.select(list_entries).where(l.tenant_id == tenant_id)
        if list_name:
            query = query.where(l.list == list_name)
            if starting_after:
                query = query.where(l.value > starting_after)
        elif starting_after:
            # Across lists the cursor is "list:value".
            after_list, _, after_value = starting_after.partition(":")
            query = query.where(
                sa.or_(l.list > after_list, sa.and_(l.list == after_list, l.value > after_value))
            )
        query = query.order_by(l.list, l.value).limit(limit + 1)
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
        entries = [list_entry_from_row(row) for row in rows]
        return entries[:limit], len(entries) > limit

    async def matches(
        self, tenant_id: str, pairs: Iterable[tuple[str, str]]
    ) -> frozenset[tuple[str, str]]:
        async with self._db.read() as conn:
            return await list_matches(conn, tenant_id, pairs)


async def _select(conn: AsyncConnection, payment_id: str) -> Decision | None:
    row = (
        await conn.execute(sa.select(decisions).where(decisions.c.payment_id == payment_id))
    ).first()
    return None if row is None else decision_from_row(row._mapping)


async def _reviews(
    conn: AsyncConnection,
    where: sa.ColumnElement[bool],
    *,
    order: sa.ColumnElement[Any] | None = None,
    limit: int | None = None,
) -> list[Review]:
    r = reviews.c
    columns = [
        r.status,
        r.created_at_us,
        r.due_at_us,
        r.resolved_at_us,
        r.resolved_by,
        r.note,
        *(c.label(f"d_{c.name}") for c in decisions.c),
    ]
    query = (
        sa.select(*columns)
        .select_from(reviews.join(decisions, decisions.c.payment_id == r.payment_id))
        .where(where)
    )
    if order is not None:
        query = query.order_by(order)
    if limit is not None:
        query = query.limit(limit)
    return [review_from_row(row._mapping) for row in (await conn.execute(query)).all()]
