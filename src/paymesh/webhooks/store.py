"""Where webhooks keeps its data (SQLAlchemy Core, SQLite and PostgreSQL): endpoints
with their sealed secrets, the events received, deliveries and their attempts.

Consuming an event (:meth:`SqlWebhooksStore.record_event`) records its id in the
inbox, stores it and creates one delivery per matching endpoint, all in one
transaction; a delivery's id is derived from (endpoint, event), so a
redelivered event finds its deliveries made and adds none.

Workers claim due deliveries with a lease (:meth:`claim`). On PostgreSQL the
candidates are read ``FOR UPDATE SKIP LOCKED`` and their endpoints locked
``SKIP LOCKED`` too (a claim never waits, so it cannot deadlock with a
finishing attempt that holds its endpoint's row); the endpoint row lock makes
the per-endpoint in-flight count exact across replicas. SQLite (one process)
serialises writers anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from paymesh.contracts.events import TOPIC_WEBHOOKS, Event
from paymesh.platform import statements
from paymesh.platform.db import Database
from paymesh.platform.outbox import append, first_delivery
from paymesh.webhooks.domain import (
    AfterAttempt,
    Attempt,
    AttemptResult,
    Delivery,
    DeliveryStatus,
    Endpoint,
    EndpointStatus,
    delivery_id,
    pending_delivery,
    wants,
)
from paymesh.webhooks.ports import EndpointRecord, StoredEvent
from paymesh.webhooks.tables import (
    attempt_from_row,
    attempts,
    deliveries,
    delivery_from_row,
    delivery_row,
    endpoint_from_row,
    endpoint_row,
    endpoints,
    event_from_row,
    events,
    inbox,
    outbox,
    record_from_row,
)

__all__ = ["DELETED", "Claimed", "SqlWebhooksStore"]

DELETED = "deleted"


@dataclass(frozen=True)
class Claimed:
    """A delivery a worker holds the lease of, with what its attempt needs."""

    delivery: Delivery
    record: EndpointRecord
    payload: bytes


Decide = Callable[[Delivery, bool, int | None], AfterAttempt]
DisabledEvent = Callable[[Endpoint, str], Event]


class SqlWebhooksStore:
    """Endpoints, events, deliveries and attempts on a SQLite or PostgreSQL database."""

    def __init__(
        self,
        db: Database,
        *,
        consumer: str,
        committed: Callable[[], None] | None = None,
        deliveries_added: Callable[[], None] | None = None,
    ) -> None:
        # `committed`: outbox rows committed (wakes the relay);
        # `deliveries_added`: new due deliveries (wakes the worker).
        self._db = db
        self._consumer = consumer
        self._committed = committed or (lambda: None)
        self._deliveries_added = deliveries_added or (lambda: None)

    @property
    def is_postgres(self) -> bool:
        return not self._db.is_sqlite

    # -- endpoints ---------------------------------------------------------

    async def create_endpoint(self, record: EndpointRecord) -> tuple[EndpointRecord, bool]:
        """Insert `record` unless its id exists; return the stored record and whether new."""
        async with self._db.transaction() as conn:
            insert = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
            result = await conn.execute(
                insert(endpoints).values(endpoint_row(record)).on_conflict_do_nothing()
            )
            if result.rowcount == 1:
                return record, True
            stored = await _select_endpoint(conn, record.endpoint.id)
        if stored is None:  # pragma: no cover - a conflict means a committed row exists
            raise RuntimeError(f"endpoint {record.endpoint.id} vanished")
        return stored, False

    async def get_endpoint(self, endpoint_id: str) -> EndpointRecord | None:
        """The endpoint (deleted ones too), whoever's it is, or None."""
        async with self._db.read() as conn:
            return await _select_endpoint(conn, endpoint_id)

    async def list_endpoints(
        self, tenant_id: str, *, limit: int, starting_after: str
    ) -> tuple[list[Endpoint], bool]:
        """The tenant's live endpoints, newest first, after the cursor's id."""
        e = endpoints.c
        async with self._db.read() as conn:
            rows, more = await _newest_first(
                conn,
                endpoints,
                e.tenant_id == tenant_id,
                live=e.deleted_at_us.is_(None),
                limit=limit,
                starting_after=starting_after,
            )
        return [endpoint_from_row(r._mapping) for r in rows], more

    async def update_endpoint(
        self, endpoint_id: str, *, fail_pending: bool = False, **values: Any
    ) -> EndpointRecord:
        """Change columns of a live endpoint; optionally fail its pending deliveries."""
        async with self._db.transaction() as conn:
            await conn.execute(
                endpoints.update().where(endpoints.c.id == endpoint_id).values(**values)
            )
            if fail_pending:
                await _fail_pending(conn, endpoint_id)
            stored = await _select_endpoint(conn, endpoint_id)
        if stored is None:  # pragma: no cover - callers read it first
            raise RuntimeError(f"endpoint {endpoint_id} vanished")
        return stored

    # -- events and deliveries ------------------------------------------

    async def record_event(self, event: Event, *, now_us: int) -> int | None:
        """Store `event` and create its deliveries, once per event id.

        Returns how many deliveries were created, or None for an event seen before.
        """
        async with self._db.transaction() as conn:
            if not await first_delivery(conn, inbox, self._consumer, event.id, now_us):
                return None
            row = {
                "id": event.id,
                "tenant_id": event.tenant,
                "type": event.type,
                "payload": event.to_json().decode(),
                "received_at_us": now_us,
            }
            await conn.execute(statements.insert_new(events, conn.dialect.name), row)
            e = endpoints.c
            rows = (
                await conn.execute(
                    sa.select(endpoints).where(
                        e.tenant_id == event.tenant,
                        e.status == EndpointStatus.ENABLED.value,
                        e.deleted_at_us.is_(None),
                    )
                )
            ).all()
            targets = [
                ep for ep in (endpoint_from_row(r._mapping) for r in rows) if wants(ep, event.type)
            ]
            for ep in targets:
                delivery = pending_delivery(
                    delivery_id(ep.id, event.id), ep.id, event.id, event.type, event.tenant, now_us
                )
                await conn.execute(
                    statements.insert_new(deliveries, conn.dialect.name), delivery_row(delivery)
                )
        if targets:
            self._deliveries_added()
        return len(targets)

    async def get_event(self, event_id: str) -> StoredEvent | None:
        """A received event, whoever's it is, or None."""
        async with self._db.read() as conn:
            row = (await conn.execute(sa.select(events).where(events.c.id == event_id))).first()
        if row is None:
            return None
        return event_from_row(row)

    async def add_delivery(self, delivery: Delivery) -> Delivery:
        """Add a new delivery (a resend)."""
        async with self._db.transaction() as conn:
            await conn.execute(deliveries.insert().values(delivery_row(delivery)))
        self._deliveries_added()
        return delivery

    async def get_delivery(self, delivery_id_: str) -> Delivery | None:
        """One delivery with its attempts."""
        async with self._db.read() as conn:
            row = (
                await conn.execute(sa.select(deliveries).where(deliveries.c.id == delivery_id_))
            ).first()
            if row is None:
                return None
            return (await _with_attempts(conn, [delivery_from_row(row._mapping)]))[0]

    async def list_deliveries(
        self, endpoint_id: str, *, limit: int, starting_after: str
    ) -> tuple[list[Delivery], bool]:
        """The endpoint's deliveries with their attempts, newest first, after the cursor."""
        async with self._db.read() as conn:
            rows, more = await _newest_first(
                conn,
                deliveries,
                deliveries.c.endpoint_id == endpoint_id,
                limit=limit,
                starting_after=starting_after,
            )
            found = await _with_attempts(conn, [delivery_from_row(r._mapping) for r in rows])
        return found, more

    # -- the worker's side ------------------------------------------------

    async def prune(self, *, before_us: int, batch: int = 1000) -> int:
        """Forget what is older than `before_us`: finished deliveries with their
        attempts, events no pending delivery needs, inbox entries. At most `batch`
        of each per call; returns how many rows went."""
        d, a, ev, ib = deliveries.c, attempts.c, events.c, inbox.c
        pending = DeliveryStatus.PENDING.value
        async with self._db.transaction() as conn:
            done = list(
                (
                    await conn.execute(
                        sa.select(d.id)
                        .where(d.status != pending, d.created_at_us < before_us)
                        .limit(batch)
                    )
                ).scalars()
            )
            gone = 0
            if done:
                await conn.execute(attempts.delete().where(a.delivery_id.in_(done)))
                result = await conn.execute(deliveries.delete().where(d.id.in_(done)))
                gone += result.rowcount
            needed = sa.select(d.event_id).where(d.status == pending)
            stale = list(
                (
                    await conn.execute(
                        sa.select(ev.id)
                        .where(ev.received_at_us < before_us, ev.id.not_in(needed))
                        .limit(batch)
                    )
                ).scalars()
            )
            if stale:
                result = await conn.execute(events.delete().where(ev.id.in_(stale)))
                gone += result.rowcount
            seen = (
                await conn.execute(
                    sa.select(ib.consumer, ib.event_id)
                    .where(ib.processed_at_us < before_us)
                    .limit(batch)
                )
            ).all()
            for consumer, event_id in seen:
                await conn.execute(
                    inbox.delete().where(ib.consumer == consumer, ib.event_id == event_id)
                )
            gone += len(seen)
        return gone

    async def next_due_at(self) -> int | None:
        """When the earliest pending delivery is due (leased or not), or None."""
        d = deliveries.c
        async with self._db.read() as conn:
            value = (
                await conn.execute(
                    sa.select(sa.func.min(d.next_attempt_at_us)).where(
                        d.status == DeliveryStatus.PENDING.value
                    )
                )
            ).scalar_one_or_none()
        return None if value is None else int(value)

    async def claim(
        self, *, now_us: int, limit: int, max_per_endpoint: int, lease_us: int
    ) -> list[Claimed]:
        """Lease up to `limit` due deliveries, at most `max_per_endpoint` in flight per endpoint."""
        if limit <= 0:
            return []
        d, e = deliveries.c, endpoints.c
        pending = d.status == DeliveryStatus.PENDING.value
        leased = sa.and_(pending, d.lease_until_us > now_us)
        full = (
            sa.select(d.endpoint_id)
            .where(leased)
            .group_by(d.endpoint_id)
            .having(sa.func.count() >= max_per_endpoint)
        )
        candidates = (
            sa.select(d.id, d.endpoint_id)
            .where(
                pending,
                d.next_attempt_at_us <= now_us,
                sa.or_(d.lease_until_us.is_(None), d.lease_until_us <= now_us),
                d.endpoint_id.not_in(full),
            )
            .order_by(d.next_attempt_at_us, d.id)
            .limit(limit * 4)
        )
        async with self._db.transaction() as conn:
            if self.is_postgres:
                candidates = candidates.with_for_update(skip_locked=True, of=deliveries)
            rows = (await conn.execute(candidates)).all()
            if not rows:
                return []
            endpoint_ids = sorted({r.endpoint_id for r in rows})
            lock = sa.select(e.id).where(e.id.in_(endpoint_ids)).order_by(e.id)
            if self.is_postgres:
                lock = lock.with_for_update(skip_locked=True)
            held = set((await conn.execute(lock)).scalars())
            counts: dict[str, int] = dict(
                (
                    await conn.execute(
                        sa.select(d.endpoint_id, sa.func.count())
                        .where(leased, d.endpoint_id.in_(held))
                        .group_by(d.endpoint_id)
                    )
                ).all()
            )
            chosen: list[str] = []
            for row in rows:
                if row.endpoint_id not in held or len(chosen) >= limit:
                    continue
                if counts.get(row.endpoint_id, 0) >= max_per_endpoint:
                    continue
                counts[row.endpoint_id] = counts.get(row.endpoint_id, 0) + 1
                chosen.append(row.id)
            if not chosen:
                return []
            await conn.execute(
                deliveries.update().where(d.id.in_(chosen)).values(lease_until_us=now_us + lease_us)
            )
            joined = (
                await conn.execute(
                    sa.select(deliveries, events.c.payload)
                    .join(events, events.c.id == d.event_id)
                    .where(d.id.in_(chosen))
                )
            ).all()
            records = {
                r.endpoint.id: r
                for r in [
                    record_from_row(row._mapping)
                    for row in await conn.execute(sa.select(endpoints).where(e.id.in_(list(held))))
                ]
            }
        claimed = [
            Claimed(
                delivery_from_row(row._mapping),
                records[row.endpoint_id],
                row.payload.encode(),
            )
            for row in joined
        ]
        claimed.sort(key=lambda c: (c.delivery.next_attempt_at_us, c.delivery.id))
        return claimed

    async def finish(
        self,
        claimed: Claimed,
        result: AttemptResult,
        *,
        started_at_us: int,
        decide: Decide,
        disabled_event: DisabledEvent,
        reason: Callable[[int], str],
    ) -> tuple[Delivery, AfterAttempt, Endpoint | None]:
        """Record an attempt and its consequences in one transaction.

        `decide(delivery, endpoint_enabled, failing_since_us)` says what comes next.
        Returns the delivery as updated, the decision and the endpoint if this
        attempt disabled it (its ``webhook_endpoint.disabled`` event is in the outbox).
        """
        d, e = deliveries.c, endpoints.c
        delivery = claimed.delivery
        number = delivery.attempts_count + 1
        disabled: Endpoint | None = None
        async with self._db.transaction() as conn:
            lock = sa.select(endpoints).where(e.id == delivery.endpoint_id)
            if self.is_postgres:
                lock = lock.with_for_update()
            ep_row = (await conn.execute(lock)).first()
            current = (
                await conn.execute(sa.select(d.status).where(d.id == delivery.id))
            ).scalar_one()
            ep = None if ep_row is None else endpoint_from_row(ep_row._mapping)
            live = (
                ep is not None
                and ep.deleted_at_us is None
                and ep.status is EndpointStatus.ENABLED
                and current == DeliveryStatus.PENDING.value
            )
            after = decide(delivery, live, ep.failing_since_us if ep is not None else None)
            await conn.execute(
                attempts.insert().values(
                    delivery_id=delivery.id,
                    number=number,
                    started_at_us=started_at_us,
                    status_code=result.status_code,
                    latency_ms=result.latency_ms,
                    error=result.error,
                )
            )
            # A delivery failed meanwhile (endpoint disabled or deleted) stays
            # failed unless this very attempt got through.
            status = after.status.value
            if current != DeliveryStatus.PENDING.value and not result.succeeded:
                status = current
            await conn.execute(
                deliveries.update()
                .where(d.id == delivery.id)
                .values(
                    status=status,
                    attempts_count=number,
                    next_attempt_at_us=after.next_attempt_at_us,
                    first_attempt_at_us=after.first_attempt_at_us,
                    lease_until_us=None,
                )
            )
            if ep is not None and ep.deleted_at_us is None and ep.status is EndpointStatus.ENABLED:
                values: dict[str, Any] = {"failing_since_us": after.failing_since_us}
                if after.disable_endpoint and after.failing_since_us is not None:
                    why = reason(after.failing_since_us)
                    values |= {"status": EndpointStatus.DISABLED.value, "disabled_reason": why}
                    disabled = replace(
                        ep, status=EndpointStatus.DISABLED, disabled_reason=why,
                        failing_since_us=after.failing_since_us,
                    )  # fmt: skip
                    await _fail_pending(conn, ep.id)
                    await append(conn, outbox, TOPIC_WEBHOOKS, disabled_event(disabled, why))
                await conn.execute(endpoints.update().where(e.id == ep.id).values(**values))
        if disabled is not None:
            self._committed()
        updated = replace(
            delivery,
            status=DeliveryStatus(status),
            attempts_count=number,
            next_attempt_at_us=after.next_attempt_at_us,
            first_attempt_at_us=after.first_attempt_at_us,
        )
        return updated, after, disabled


async def _fail_pending(conn: AsyncConnection, endpoint_id: str) -> None:
    d = deliveries.c
    await conn.execute(
        deliveries.update()
        .where(d.endpoint_id == endpoint_id, d.status == DeliveryStatus.PENDING.value)
        .values(status=DeliveryStatus.FAILED.value)
    )


async def _newest_first(
    conn: AsyncConnection,
    table: sa.Table,
    scope: sa.ColumnElement[bool],
    *,
    live: sa.ColumnElement[bool] | None = None,
    limit: int,
    starting_after: str,
) -> tuple[list[sa.Row[Any]], bool]:
    """A page of `table`'s rows in `scope` (and `live`), newest first, after the row
    `starting_after` (of `scope`; none when it is not); and whether more follow."""
    c = table.c
    query = sa.select(table).where(scope, *([] if live is None else [live]))
    if starting_after:
        cursor = (
            await conn.execute(sa.select(c.created_at_us).where(c.id == starting_after, scope))
        ).scalar_one_or_none()
        if cursor is None:
            return [], False
        query = query.where(
            sa.or_(
                c.created_at_us < cursor,
                sa.and_(c.created_at_us == cursor, c.id < starting_after),
            )
        )
    rows = (
        await conn.execute(query.order_by(c.created_at_us.desc(), c.id.desc()).limit(limit + 1))
    ).all()
    return list(rows[:limit]), len(rows) > limit


async def _select_endpoint(conn: AsyncConnection, endpoint_id: str) -> EndpointRecord | None:
    row = (await conn.execute(sa.select(endpoints).where(endpoints.c.id == endpoint_id))).first()
    return None if row is None else record_from_row(row._mapping)


async def _with_attempts(conn: AsyncConnection, found: Sequence[Delivery]) -> list[Delivery]:
    if not found:
        return []
    a = attempts.c
    rows = (
        await conn.execute(
            sa.select(attempts)
            .where(a.delivery_id.in_([x.id for x in found]))
            .order_by(a.delivery_id, a.number)
        )
    ).all()
    by_delivery: dict[str, list[Attempt]] = {}
    for r in rows:
        by_delivery.setdefault(r.delivery_id, []).append(attempt_from_row(r))
    return [replace(x, attempts=tuple(by_delivery.get(x.id, ()))) for x in found]
