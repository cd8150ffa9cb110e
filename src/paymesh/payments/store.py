"""Payments, refunds, top-ups, payouts and transfers with their saga state; fees; events.

Every row carries its status and the saga step in progress (``step``, its
parameter ``step_amount`` for payments, ``attempts`` and
``next_attempt_at_us``). Every transition is a conditional UPDATE on the
status and step it starts from, so two runners completing the same step
make one transition and write one set of events (in the same transaction,
into the outbox).

Refunds are reserved atomically: the payment row is locked (``FOR UPDATE``
on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already serialises writers),
the refunds that did not fail are summed and the new refund is inserted in
one transaction, so concurrent refunds cannot exceed what was captured.

The outbox doubles as the tenant's event log: ``list_events`` reads it by
(tenant_id, seq), newest first.

Consumed events (risk's review resolutions) are applied by
:meth:`SqlPaymentsStore.apply_event`: the event id goes into ``inbox`` in the
same transaction as the payment's transition and its events, so a
redelivered event changes nothing. The payment row is locked first (``FOR
UPDATE`` on PostgreSQL) so the transition is decided on the row it updates.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from paymesh.contracts.events import TOPIC_PAYMENTS, Event
from paymesh.payments.domain import (
    Payment,
    PaymentStatus,
    Refund,
    RefundStatus,
    Step,
    TenantFees,
    Topup,
    TopupStatus,
    failure_label,
)
from paymesh.payments.flows import FLOWS, Flow, flow, metadata
from paymesh.payments.flows.payment import payment_from_row, payments
from paymesh.payments.flows.refund import refunds
from paymesh.payments.tables import (
    StoredEvent,
    event_columns,
    event_from_row,
    fees_from_row,
    fees_row,
    inbox,
    outbox,
    tenant_fees,
)
from paymesh.platform import statements
from paymesh.platform.db import Database
from paymesh.platform.locks import lock_key
from paymesh.platform.metrics import PAYMENTS_AMOUNT, PAYMENTS_COMPLETED
from paymesh.platform.outbox import append, first_delivery

__all__ = [
    "LIVENESS_LOCK",
    "Due",
    "OpenSteps",
    "SqlPaymentsStore",
    "StoredEvent",
    "inbox",
    "metadata",
    "outbox",
    "tenant_fees",
]

S = TypeVar("S")

# The advisory-lock key under which each payments process holds its liveness lock
# (its owner id is the lock's second half; see platform.locks).
LIVENESS_LOCK = lock_key("payments:runner") & 0x7FFF_FFFF  # a positive int4
_LIVE_OWNERS = (
    sa.text(
        "SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2"
        " AND classid = CAST(:liveness_lock AS oid) AND granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    .bindparams(liveness_lock=LIVENESS_LOCK)
    .columns(sa.column("objid", sa.BigInteger))
)

# Columns a transition never rewrites.
_FIXED = ("id", "tenant_id", "created_at_us")

SERVICE = "payments"


@functools.cache
def _completed(kind: str, status: str, failure_code: str) -> Any:
    return PAYMENTS_COMPLETED.labels(
        service=SERVICE, kind=kind, status=status, failure_code=failure_code
    )


@functools.cache
def _amount(kind: str, currency: str) -> Any:
    return PAYMENTS_AMOUNT.labels(service=SERVICE, kind=kind, currency=currency)


def _count_final(flow: Flow, before: str, values: dict[str, Any]) -> None:
    """Count an object that a committed transition took from `before` to a final status.

    Called only after the conditional UPDATE won and its transaction committed,
    so a retry or a runner that lost the race counts nothing.
    """
    status = str(values["status"])
    if status not in flow.final or str(before) in flow.final:
        return
    kind = flow.kind
    _completed(kind, status, failure_label(str(values.get("failure_code") or ""))).inc()
    if status == "succeeded":
        _amount(kind, str(values["currency"])).inc(int(values[flow.counted]))


@dataclass(frozen=True)
class Due:
    """A saga step waiting to be (re)run: which kind of object, its id and tenant."""

    kind: str
    id: str
    tenant_id: str


@dataclass(frozen=True)
class OpenSteps:
    """Saga objects of one flow at one step in progress: how many, and since when the oldest."""

    flow: str
    step: str
    count: int
    oldest_started_at_us: int


class SqlPaymentsStore:
    """Persistence of the saga objects, tenants' fees, and the outbox."""

    def __init__(
        self,
        db: Database,
        *,
        on_commit: Callable[[], None] | None = None,
        owner: int | None = None,
    ) -> None:
        self.db = db
        self._on_commit = on_commit
        # This runner's owner id, written with every step it records; on PostgreSQL
        # also the `sub` of its liveness lock: see :meth:`due` and :meth:`claim`.
        self.owner = secrets.randbelow(0x7FFF_FFFF) + 1 if owner is None else owner
        # Whether steps whose owner is gone may be taken (the Resumer says, see there).
        self.orphans = False

    def _owned(self, values: dict[str, Any]) -> dict[str, Any]:
        values["lease_owner"] = self.owner
        return values

    # -- any saga object -------------------------------------------------------

    async def add(self, kind: str, obj: S) -> S | None:
        """Insert `obj`; if its id is taken, return the object stored under it instead."""
        f = flow(kind)
        object_id: str = getattr(obj, "id")  # noqa: B009 - every saga object has one
        try:
            async with self.db.transaction() as conn:
                existing = await _one(conn, f.table, object_id)
                if existing is not None:
                    found: S = f.load(existing)
                    return found
                await conn.execute(statements.insert(f.table), self._owned(f.row(obj)))
                return None
        except IntegrityError:  # a concurrent insert of the same id won
            again: S | None = await self.get(kind, object_id)
            if again is None:
                raise
            return again

    async def get(self, kind: str, object_id: str) -> Any:
        """The object of `kind` stored under `object_id`, or None."""
        f = flow(kind)
        async with self.db.read() as conn:
            row = await _one(conn, f.table, object_id)
        return None if row is None else f.load(row)

    async def list_objects(
        self, kind: str, tenant_id: str, *, limit: int, starting_after: Any = None
    ) -> tuple[list[Any], bool]:
        """A tenant's objects of `kind`, newest first, after `starting_after`; and whether
        more follow (keyset pagination on (created_at_us, id): the id breaks ties)."""
        f = flow(kind)
        t = f.table.c
        query = sa.select(f.table).where(t.tenant_id == tenant_id)
        if starting_after is not None:
            c = starting_after
            query = query.where(
                sa.or_(
                    t.created_at_us < c.created_at_us,
                    sa.and_(t.created_at_us == c.created_at_us, t.id < c.id),
                )
            )
        query = query.order_by(t.created_at_us.desc(), t.id.desc()).limit(limit + 1)
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [f.load(r) for r in rows[:limit]], len(rows) > limit

    async def save(
        self,
        kind: str,
        new: Any,
        *,
        status: str,
        step: Step | None,
        events: Sequence[Event] = (),
    ) -> bool:
        """Write `new` if the object is still at (`status`, `step`), with its events and
        what its flow writes with the transition (:attr:`Flow.also`)."""
        f = flow(kind)
        values = f.row(new)
        for fixed in (*_FIXED, *f.fixed):
            values.pop(fixed)
        also = None if f.also is None else f.also(new)
        return await self._transition(f, new.id, status, step, values, events, also)

    # -- payments ------------------------------------------------------------

    async def get_payment(self, payment_id: str) -> Payment | None:
        """The payment, or None."""
        found: Payment | None = await self.get("payment", payment_id)
        return found

    async def save_payment(
        self,
        new: Payment,
        *,
        status: PaymentStatus,
        step: Step | None,
        events: Sequence[Event] = (),
    ) -> bool:
        """Write `new` if the payment is still at (`status`, `step`), with its events."""
        return await self.save("payment", new, status=status, step=step, events=events)

    async def apply_event(
        self,
        consumer: str,
        event_id: str,
        payment_id: str,
        decide: Callable[[Payment | None], tuple[Payment, Sequence[Event]] | None],
        *,
        now_us: int,
    ) -> Payment | None:
        """Apply a consumed event to a payment once: record `event_id` for `consumer` and
        write what `decide` makes of the locked payment, in one transaction.

        None when the event was applied before, or `decide` answers None (the
        event is recorded and changes nothing); else the new payment.
        """
        async with self.db.transaction() as conn:
            if not await first_delivery(conn, inbox, consumer, event_id, now_us):
                return None
            row = await _one(conn, payments, payment_id, for_update=True)
            before = None if row is None else payment_from_row(row)
            outcome = decide(before)
            if before is None or outcome is None:
                return None
            new, events = outcome
            payment = flow("payment")
            values = payment.row(new)
            for fixed in (*_FIXED, *payment.fixed):
                values.pop(fixed)
            c = payments.c
            at_step = c.step.is_(None) if before.step is None else c.step == before.step.value
            updated = await conn.execute(
                payments.update()
                .where(c.id == payment_id, c.status == before.status.value, at_step)
                .values(self._owned(values))
            )
            if updated.rowcount != 1:  # pragma: no cover - the row is locked since it was read
                raise RuntimeError(f"payment {payment_id} changed under its lock")
            for event in events:
                await append(conn, outbox, TOPIC_PAYMENTS, event)
        _count_final(payment, before.status.value, values)
        if events and self._on_commit is not None:
            self._on_commit()
        return new

    async def expired_authorizations(self, now_us: int, *, limit: int = 100) -> list[Due]:
        """Authorised payments (no step running) whose authorisation ended by `now_us`."""
        c = payments.c
        query = (
            sa.select(c.id, c.tenant_id)
            .where(
                c.status.in_([PaymentStatus.REQUIRES_CAPTURE.value, PaymentStatus.IN_REVIEW.value]),
                c.expires_at_us > 0,
                c.expires_at_us <= now_us,
                c.step.is_(None),
            )
            .order_by(c.expires_at_us)
            .limit(limit)
        )
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [Due("payment", r.id, r.tenant_id) for r in rows]

    # -- refunds -------------------------------------------------------------

    async def reserve_refund(
        self, refund_id: str, payment_id: str, make: Callable[[Payment | None, int], Refund]
    ) -> tuple[Refund, bool]:
        """Insert the refund `make` builds from the locked payment and its reserved total.

        Returns (the refund, True) when inserted, (the stored refund, False)
        when `refund_id` was taken. `make` may raise to refuse; nothing is written.
        """
        try:
            async with self.db.transaction() as conn:
                payment = await _one(conn, payments, payment_id, for_update=True)
                existing = await _one(conn, refunds, refund_id)
                if existing is not None:
                    return flow("refund").load(existing), False
                reserved = await conn.scalar(
                    sa.select(sa.func.coalesce(sa.func.sum(refunds.c.amount), 0)).where(
                        refunds.c.payment_id == payment_id,
                        refunds.c.status != RefundStatus.FAILED.value,
                    )
                )
                refund = make(
                    None if payment is None else payment_from_row(payment), int(reserved or 0)
                )
                await conn.execute(refunds.insert().values(self._owned(flow("refund").row(refund))))
                return refund, True
        except IntegrityError:
            found: Refund | None = await self.get("refund", refund_id)
            if found is None:
                raise
            return found, False

    async def settle_refund(
        self, new: Refund, events: Sequence[Event] = (), *, step: Step = Step.TRANSFER
    ) -> bool:
        """Finish the refund's `step` (its transfer, or the lookup of it after its deadline);
        a success adds to the payment's refunded amount, once."""
        return await self.save(
            "refund", new, status=RefundStatus.PROCESSING, step=step, events=events
        )

    # -- top-ups --------------------------------------------------------------

    async def settle_topup(self, new: Topup, events: Sequence[Event] = ()) -> bool:
        """Finish the top-up's credit step."""
        return await self.save(
            "topup", new, status=TopupStatus.PROCESSING, step=Step.TRANSFER, events=events
        )

    # -- fees ----------------------------------------------------------------

    async def set_fees(self, fees: TenantFees) -> None:
        """Store the tenant's fee schedule (replacing the one before)."""
        row = fees_row(fees)
        async with self.db.transaction() as conn:
            updated = await conn.execute(
                tenant_fees.update().where(tenant_fees.c.tenant_id == fees.tenant_id).values(row)
            )
            if updated.rowcount == 0:
                await conn.execute(tenant_fees.insert().values(row))

    async def get_fees(self, tenant_id: str) -> TenantFees | None:
        """The tenant's fee schedule, or None when none was set."""
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    sa.select(tenant_fees).where(tenant_fees.c.tenant_id == tenant_id)
                )
            ).first()
        return None if row is None else fees_from_row(row)

    # -- events --------------------------------------------------------------

    async def get_event(self, tenant_id: str, event_id: str) -> StoredEvent | None:
        """The tenant's event, or None (another tenant's looks the same)."""
        o = outbox.c
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    sa.select(*event_columns).where(
                        o.event_id == event_id, o.tenant_id == tenant_id
                    )
                )
            ).first()
        return None if row is None else event_from_row(row)

    async def list_events(
        self, tenant_id: str, *, limit: int, before_seq: int | None = None
    ) -> tuple[list[StoredEvent], bool]:
        """The tenant's events, newest first, older than `before_seq`; and whether more follow."""
        o = outbox.c
        query = sa.select(*event_columns).where(o.tenant_id == tenant_id)
        if before_seq is not None:
            query = query.where(o.seq < before_seq)
        query = query.order_by(o.seq.desc()).limit(limit + 1)
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [event_from_row(r) for r in rows[:limit]], len(rows) > limit

    # -- the saga ------------------------------------------------------------

    async def postpone(
        self, kind: str, object_id: str, step: Step, *, attempts: int, next_attempt_at_us: int
    ) -> bool:
        """Record a failed run of `step`: try again at `next_attempt_at_us`."""
        table = flow(kind).table
        async with self.db.transaction() as conn:
            result = await conn.execute(
                table.update()
                .where(table.c.id == object_id, table.c.step == step.value)
                .values(
                    self._owned({"attempts": attempts, "next_attempt_at_us": next_attempt_at_us})
                )
            )
        return bool(result.rowcount)

    async def claim(
        self, kind: str, object_id: str, step: Step, *, now_us: int, until_us: int, take: bool
    ) -> bool:
        """Take the lease of the object's `step` until `until_us`, if no live runner holds it.

        It is free when it is due, already this process's, or (with :attr:`orphans`,
        PostgreSQL) its owner is gone; `take` takes it whatever its lease (the
        embedded shape's first pass after a restart). One conditional UPDATE: of
        two replicas claiming at once, the second finds the lease taken.
        """
        table = flow(kind).table
        c = table.c
        free: list[Any] = [c.next_attempt_at_us <= now_us, c.lease_owner == self.owner]
        if self.orphans and not self.db.is_sqlite:
            free.append(sa.and_(c.lease_owner.is_not(None), c.lease_owner.not_in(_LIVE_OWNERS)))
        query = table.update().where(c.id == object_id, c.step == step.value)
        if not take:
            query = query.where(sa.or_(*free))
        async with self.db.transaction() as conn:
            result = await conn.execute(query.values(self._owned({"next_attempt_at_us": until_us})))
        return bool(result.rowcount)

    async def due(
        self, now_us: int | None, *, limit: int = 100, orphans: bool = False
    ) -> list[Due]:
        """Objects with a step in progress whose next attempt is due (None: all of them).

        With `orphans` (PostgreSQL), also those whose lease belongs to a payments
        process that is gone: its liveness lock (:data:`LIVENESS_LOCK` and its
        owner id) is no longer held, because its session ended with it.
        """
        found: list[Due] = []
        async with self.db.read() as conn:
            for kind, f in FLOWS.items():
                table = f.table
                query = sa.select(table.c.id, table.c.tenant_id).where(table.c.step.is_not(None))
                if now_us is not None:
                    ready = table.c.next_attempt_at_us <= now_us
                    if orphans and not self.db.is_sqlite:
                        ready = sa.or_(
                            ready,
                            sa.and_(
                                table.c.lease_owner.is_not(None),
                                table.c.lease_owner.not_in(_LIVE_OWNERS),
                            ),
                        )
                    query = query.where(ready)
                query = query.order_by(table.c.next_attempt_at_us).limit(limit)
                rows = (await conn.execute(query)).all()
                found.extend(Due(kind, r.id, r.tenant_id) for r in rows)
        return found

    async def open_steps(self) -> list[OpenSteps]:
        """Every (flow, step) with objects in progress: one GROUP BY per saga table, sent
        as one statement (the Resumer's gauges)."""
        parts = []
        for kind, f in FLOWS.items():
            c = f.table.c
            # A row recorded before step_started_at_us was kept counts from its last update.
            started = sa.case(
                (c.step_started_at_us > 0, c.step_started_at_us), else_=c.updated_at_us
            )
            parts.append(
                sa.select(
                    sa.literal(kind).label("flow"),
                    c.step.label("step"),
                    sa.func.count().label("n"),
                    sa.func.min(started).label("oldest"),
                )
                .where(c.step.is_not(None))
                .group_by(c.step)
            )
        async with self.db.read() as conn:
            rows = (await conn.execute(sa.union_all(*parts))).all()
        return [OpenSteps(r.flow, r.step, int(r.n), int(r.oldest)) for r in rows]

    async def _transition(
        self,
        f: Flow,
        object_id: str,
        status: str,
        step: Step | None,
        values: dict[str, Any],
        events: Sequence[Event],
        also: sa.Executable | None = None,
    ) -> bool:
        where = {"w_id": object_id, "w_status": str(status)}
        if step is None:
            update = statements.update_where(f.table, "id", "status", null=("step",))
        else:
            update = statements.update_where(f.table, "id", "status", "step")
            where["w_step"] = step.value
        async with self.db.transaction() as conn:
            result = await conn.execute(update, {**self._owned(values), **where})
            if result.rowcount != 1:
                return False
            if also is not None:
                await conn.execute(also)
            for event in events:
                await append(conn, outbox, TOPIC_PAYMENTS, event)
        _count_final(f, status, values)
        if events and self._on_commit is not None:
            self._on_commit()
        return True


async def _one(
    conn: AsyncConnection, table: sa.Table, object_id: str, *, for_update: bool = False
) -> sa.Row[Any] | None:
    query = statements.by_id(table, for_update=for_update)
    row: sa.Row[Any] | None = (await conn.execute(query, {"w_id": object_id})).first()
    return row
