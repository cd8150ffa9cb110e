"""The transactional outbox and the idempotent inbox.

A service writes its events into ``outbox`` in the same transaction as the
state change (:func:`append`); :class:`OutboxRelay` publishes committed rows
to the bus and marks them. A consumer records each event id in ``inbox`` in
the same transaction as its effect (:func:`first_delivery`), so a
redelivered event changes nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from paymesh.contracts.events import Event, check_publishable
from paymesh.platform import statements
from paymesh.platform.bus import EventBus
from paymesh.platform.clock import Clock, SystemClock
from paymesh.platform.db import Database
from paymesh.platform.locks import SessionLock, lock_key
from paymesh.platform.logging import get_logger
from paymesh.platform.loops import Periodic
from paymesh.platform.metrics import OUTBOX_OLDEST_PENDING_AGE, OUTBOX_PENDING
from paymesh.platform.tracing import current_traceparent

__all__ = [
    "OutboxRelay",
    "append",
    "first_delivery",
    "inbox_key",
    "inbox_table",
    "outbox_table",
]

log = get_logger(__name__)


def outbox_table(metadata: sa.MetaData) -> sa.Table:
    """Declare the outbox table on a service's metadata."""
    return sa.Table(
        "outbox",
        metadata,
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False, unique=True),
        sa.Column("topic", sa.String(128), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
        sa.Column("published_at_us", sa.BigInteger, nullable=True),
        sa.Index("ix_outbox_tenant_seq", "tenant_id", "seq"),
    )


def inbox_table(metadata: sa.MetaData) -> sa.Table:
    """Declare the inbox table on a service's metadata."""
    return sa.Table(
        "inbox",
        metadata,
        sa.Column("consumer", sa.String(64), primary_key=True),
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("processed_at_us", sa.BigInteger, nullable=False),
    )


async def append(
    conn: AsyncConnection,
    outbox: sa.Table,
    topic: str,
    event: Event,
    *,
    now_us: int | None = None,
) -> None:
    """Write `event` to the outbox inside the caller's transaction, with the trace
    context it was produced in (when a span is active: tracing is on).

    Raises :class:`~paymesh.contracts.events.UnknownEventType` for an event of a
    type the contract does not declare: a producer bug, caught before it commits.
    """
    check_publishable(event)
    if event.traceparent is None and (traceparent := current_traceparent()) is not None:
        event = dataclasses.replace(event, traceparent=traceparent)
    row = {
        "event_id": event.id,
        "topic": topic,
        "key": event.subject,
        "payload": event.to_json().decode(),
        "tenant_id": event.tenant,
        "type": event.type,
        "created_at_us": SystemClock().now_us() if now_us is None else now_us,
    }
    await conn.execute(statements.insert(outbox), row)


_MAX_EVENT_ID = 64  # the inbox's event_id column


def inbox_key(event_id: str) -> str:
    """What `event_id` is recorded under: itself, or a digest when the column can't hold it.

    Another producer's ids may be longer than ours; refusing them would fail the
    insert on PostgreSQL and have the bus redeliver the event forever.
    """
    if len(event_id) <= _MAX_EVENT_ID:
        return event_id
    return f"sha256:{hashlib.sha256(event_id.encode()).hexdigest()[:56]}"


async def first_delivery(
    conn: AsyncConnection, inbox: sa.Table, consumer: str, event_id: str, now_us: int
) -> bool:
    """Record `event_id` for `consumer`; False when it was already recorded."""
    values = {"consumer": consumer, "event_id": inbox_key(event_id), "processed_at_us": now_us}
    result = await conn.execute(statements.insert_new(inbox, conn.dialect.name), values)
    return bool(result.rowcount)


@functools.cache
def _unpublished(outbox: sa.Table, limit: int) -> sa.Select[Any]:
    """The first `limit` unpublished rows past the seq ``w_after``."""
    o = outbox.c
    return (
        sa.select(o.seq, o.topic, o.payload, o.created_at_us)
        .where(o.published_at_us.is_(None), o.seq > sa.bindparam("w_after"))
        .order_by(o.seq)
        .limit(limit)
    )


class OutboxRelay:
    """Publish committed outbox rows to the bus, oldest first, then mark them.

    Delivery is at-least-once: a crash between publish and mark publishes the
    row again, and consumers' inboxes absorb the duplicate.

    On SQLite rows are marked lazily: a write (an fsync) per batch published cost as
    much as the batch's own transaction, so the relay remembers the last seq it
    published, reads only past it, and marks everything up to it at most every
    `mark_interval_s` (and when it stops). SQLite writes one transaction at a time,
    so seqs commit in order and none can appear behind that mark; a crash publishes
    the unmarked rows again, which the inboxes absorb. On PostgreSQL, where a lower
    seq may commit after a higher one was read, each batch is marked at once.

    On PostgreSQL only one relay per database publishes at a time: the leader
    holds a session-level advisory lock (keyed by `name`) on a connection of its
    own; the others wait as standbys and take over when that session ends.
    SQLite is the embedded shape, with one process and so one relay.

    The gauges ``paymesh_outbox_pending_rows`` and
    ``paymesh_outbox_oldest_pending_age_seconds`` (labelled with `service`) come
    from the relay's own read of unpublished rows: when it finds fewer than a
    batch, that is the whole backlog, so no query is added; only a full batch
    (a backlog) costs a count, at most once a second. Only the leader reports
    them; a standby reports 0, so a sum (or a max) over replicas is the backlog.
    """

    def __init__(
        self,
        db: Database,
        outbox: sa.Table,
        bus: EventBus,
        *,
        service: str,
        batch_size: int = 200,
        poll_interval_s: float = 0.5,
        clock: Clock | None = None,
        name: str = "outbox-relay",
        mark_interval_s: float = 1.0,
    ) -> None:
        self._db = db
        self._lazy = db.is_sqlite
        self._after = 0  # lazily: every row up to this seq was published
        self._marked = 0  # lazily: every row up to this seq was marked
        self._mark_interval_s = mark_interval_s
        self._marked_at = time.monotonic()
        self._lead = SessionLock(db, lock_key(name))
        self._outbox = outbox
        self._bus = bus
        self._batch_size = batch_size
        self._clock = clock or SystemClock()
        self._loop = Periodic("outbox-relay", self._relay_all, interval_s=poll_interval_s)
        self._pending = OUTBOX_PENDING.labels(service=service)
        self._oldest = OUTBOX_OLDEST_PENDING_AGE.labels(service=service)
        self._counted_at = 0.0

    def notify(self) -> None:
        """Tell the relay that rows were committed, so it publishes without waiting."""
        self._loop.wake()

    async def relay_once(self) -> int:
        """Publish one batch; return how many rows were published."""
        o = self._outbox
        async with self._db.read() as conn:
            rows = (
                await conn.execute(_unpublished(o, self._batch_size), {"w_after": self._after})
            ).all()
            await self._measure(conn, rows)
            # Rows are never deleted, but a database replaced under a live relay
            # (restored, recreated) numbers from the start again: read from there.
            restarted = (
                not rows
                and self._after > 0
                and ((await conn.scalar(sa.select(sa.func.max(o.c.seq)))) or 0) < self._after
            )
        if restarted:
            self._after = self._marked = 0
            return await self.relay_once()
        if not rows:
            await self._mark_published()
            return 0
        for row in rows:
            await self._bus.publish(row.topic, Event.from_json(row.payload))
        if self._lazy:
            self._after = rows[-1].seq
            if time.monotonic() - self._marked_at >= self._mark_interval_s:
                await self._mark_published()
        else:
            async with self._db.transaction() as conn:
                await conn.execute(
                    o.update()
                    .where(o.c.seq.in_([r.seq for r in rows]))
                    .values(published_at_us=self._clock.now_us())
                )
        if len(rows) < self._batch_size:  # all of it is out: nothing waits now
            self._pending.set(0)
            self._oldest.set(0)
        return len(rows)

    async def _mark_published(self) -> None:
        """Lazily (SQLite): mark every row up to the last seq published."""
        if self._after <= self._marked:
            return
        after, o = self._after, self._outbox
        async with self._db.transaction() as conn:
            await conn.execute(
                o.update()
                .where(o.c.published_at_us.is_(None), o.c.seq <= after)
                .values(published_at_us=self._clock.now_us())
            )
        self._marked, self._marked_at = after, time.monotonic()

    async def _measure(self, conn: AsyncConnection, rows: Sequence[Any]) -> None:
        """Set the backlog gauges from the unpublished rows just read (the oldest first)."""
        if not rows:
            self._pending.set(0)
            self._oldest.set(0)
            return
        oldest_us = min(r.created_at_us for r in rows)
        self._oldest.set(max(0.0, (self._clock.now_us() - oldest_us) / 1_000_000))
        if len(rows) < self._batch_size:
            self._pending.set(len(rows))
            return
        now = time.monotonic()
        if now - self._counted_at < 1.0:
            return
        self._counted_at = now
        o = self._outbox
        waiting = await conn.scalar(
            sa.select(sa.func.count())
            .select_from(o)
            .where(o.c.published_at_us.is_(None), o.c.seq >= rows[0].seq)
        )
        self._pending.set(int(waiting or 0))

    def _standby(self) -> None:
        """Not the leader: the leader reports the backlog."""
        self._pending.set(0)
        self._oldest.set(0)

    async def is_leader(self) -> bool:
        """Hold (or try to take) the publishing lead; always True on SQLite."""
        return await self._lead.held()

    async def _relay_all(self) -> None:
        """While leader, publish batch after batch until the backlog is out."""
        while (leader := await self.is_leader()) and (await self.relay_once() == self._batch_size):
            pass
        if not leader:
            self._standby()

    async def run(self) -> None:
        """Relay until cancelled (publishing only while leader)."""
        await self._loop.run()

    def start(self) -> None:
        """Run the relay in the background."""
        self._loop.start()

    async def stop(self) -> None:
        """Stop the background relay (marking what it published) and give up the lead."""
        await self._loop.stop()
        with contextlib.suppress(Exception):  # unmarked rows are published again
            await self._mark_published()
        await self._lead.release()
