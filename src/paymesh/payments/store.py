"""Payments, refunds and top-ups with their saga state, on SQLite and PostgreSQL.

Every row carries its status and the saga step in progress (``step``, its
parameter ``step_amount``, ``attempts`` and ``next_attempt_at_us``). Every
transition is a conditional UPDATE on the status and step it starts from,
so two runners completing the same step make one transition and write one
set of events (in the same transaction, into the outbox).

Refunds are reserved atomically: the payment row is locked (``FOR UPDATE``
on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already serialises writers),
the refunds that did not fail are summed and the new refund is inserted in
one transaction, so concurrent refunds cannot exceed what was captured.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from paymesh.contracts.events import TOPIC_PAYMENTS, Event
from paymesh.payments.domain import (
    CaptureMethod,
    Payment,
    PaymentContext,
    PaymentStatus,
    Refund,
    RefundStatus,
    RiskAssessment,
    Step,
    Topup,
    TopupStatus,
)
from paymesh.platform.db import Database
from paymesh.platform.outbox import append, outbox_table

__all__ = ["Due", "PaymentStore", "metadata", "outbox", "payments", "refunds", "topups"]

metadata = sa.MetaData()


def _saga_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
        sa.Column("updated_at_us", sa.BigInteger, nullable=False),
        sa.Column("step", sa.String(16), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at_us", sa.BigInteger, nullable=False, server_default="0"),
    ]


payments = sa.Table(
    "payments",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("payer_account_id", sa.Text, nullable=False),
    sa.Column("payee_account_id", sa.Text, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("capture_method", sa.String(16), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("amount_captured", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("amount_refunded", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("fee", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("metadata", sa.Text, nullable=False, server_default="{}"),
    sa.Column("context", sa.Text, nullable=False, server_default="{}"),
    sa.Column("risk", sa.Text, nullable=True),
    sa.Column("failure_code", sa.String(64), nullable=False, server_default=""),
    sa.Column("failure_message", sa.Text, nullable=False, server_default=""),
    sa.Column("step_amount", sa.BigInteger, nullable=False, server_default="0"),
    *_saga_columns(),
    sa.Index("ix_payments_tenant_created", "tenant_id", "created_at_us", "id"),
    sa.Index("ix_payments_step", "step", "next_attempt_at_us"),
)

refunds = sa.Table(
    "refunds",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("payment_id", sa.String(64), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("requested_amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("failure_code", sa.String(64), nullable=False, server_default=""),
    sa.Column("payer_account_id", sa.Text, nullable=False),
    sa.Column("payee_account_id", sa.Text, nullable=False),
    *_saga_columns(),
    sa.Index("ix_refunds_payment", "payment_id"),
    sa.Index("ix_refunds_step", "step", "next_attempt_at_us"),
)

topups = sa.Table(
    "topups",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("account_id", sa.Text, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("failure_code", sa.String(64), nullable=False, server_default=""),
    *_saga_columns(),
    sa.Index("ix_topups_step", "step", "next_attempt_at_us"),
)

outbox = outbox_table(metadata)

_TABLES = {"payment": payments, "refund": refunds, "topup": topups}


@dataclass(frozen=True)
class Due:
    """A saga step waiting to be (re)run: which kind of object, its id and tenant."""

    kind: str
    id: str
    tenant_id: str


class PaymentStore:
    """Persistence of payments, refunds and top-ups, and their outbox."""

    def __init__(self, db: Database, *, on_commit: Callable[[], None] | None = None) -> None:
        self.db = db
        self._on_commit = on_commit

    # -- payments ------------------------------------------------------------

    async def add_payment(self, p: Payment) -> Payment | None:
        """Insert `p`; if its id is taken, return the payment stored under it instead."""
        try:
            async with self.db.transaction() as conn:
                existing = await _one(conn, payments, p.id)
                if existing is not None:
                    return _payment(existing)
                await conn.execute(payments.insert().values(**_payment_row(p)))
                return None
        except IntegrityError:  # a concurrent insert of the same id won
            found = await self.get_payment(p.id)
            if found is None:
                raise
            return found

    async def get_payment(self, payment_id: str) -> Payment | None:
        """The payment, or None."""
        async with self.db.read() as conn:
            row = await _one(conn, payments, payment_id)
        return None if row is None else _payment(row)

    async def list_payments(
        self, tenant_id: str, *, limit: int, starting_after: Payment | None = None
    ) -> tuple[list[Payment], bool]:
        """A tenant's payments, newest first, after `starting_after`; and whether more follow."""
        t = payments.c
        query = sa.select(payments).where(t.tenant_id == tenant_id)
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
        return [_payment(r) for r in rows[:limit]], len(rows) > limit

    async def save_payment(
        self,
        new: Payment,
        *,
        status: PaymentStatus,
        step: Step | None,
        events: Sequence[Event] = (),
    ) -> bool:
        """Write `new` if the payment is still at (`status`, `step`), with its events."""
        values = _payment_row(new)
        for fixed in ("id", "tenant_id", "created_at_us", "amount_refunded"):
            values.pop(fixed)
        return await self._transition(payments, new.id, status, step, values, events)

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
                    return _refund(existing), False
                reserved = await conn.scalar(
                    sa.select(sa.func.coalesce(sa.func.sum(refunds.c.amount), 0)).where(
                        refunds.c.payment_id == payment_id,
                        refunds.c.status != RefundStatus.FAILED.value,
                    )
                )
                refund = make(None if payment is None else _payment(payment), int(reserved or 0))
                await conn.execute(refunds.insert().values(**_refund_row(refund)))
                return refund, True
        except IntegrityError:
            found = await self.get_refund(refund_id)
            if found is None:
                raise
            return found, False

    async def get_refund(self, refund_id: str) -> Refund | None:
        """The refund, or None."""
        async with self.db.read() as conn:
            row = await _one(conn, refunds, refund_id)
        return None if row is None else _refund(row)

    async def settle_refund(self, new: Refund, events: Sequence[Event] = ()) -> bool:
        """Finish the refund's transfer step; a success adds to the payment's refunded amount."""
        values = _refund_row(new)
        for fixed in ("id", "tenant_id", "payment_id", "created_at_us"):
            values.pop(fixed)

        async def also(conn: AsyncConnection) -> None:
            if new.status is RefundStatus.SUCCEEDED:
                await conn.execute(
                    payments.update()
                    .where(payments.c.id == new.payment_id)
                    .values(amount_refunded=payments.c.amount_refunded + new.amount)
                )

        return await self._transition(
            refunds, new.id, RefundStatus.PROCESSING, Step.TRANSFER, values, events, also
        )

    # -- top-ups -------------------------------------------------------------

    async def add_topup(self, t: Topup) -> Topup | None:
        """Insert `t`; if its id is taken, return the top-up stored under it instead."""
        try:
            async with self.db.transaction() as conn:
                existing = await _one(conn, topups, t.id)
                if existing is not None:
                    return _topup(existing)
                await conn.execute(topups.insert().values(**_topup_row(t)))
                return None
        except IntegrityError:
            found = await self.get_topup(t.id)
            if found is None:
                raise
            return found

    async def get_topup(self, topup_id: str) -> Topup | None:
        """The top-up, or None."""
        async with self.db.read() as conn:
            row = await _one(conn, topups, topup_id)
        return None if row is None else _topup(row)

    async def settle_topup(self, new: Topup, events: Sequence[Event] = ()) -> bool:
        """Finish the top-up's transfer step."""
        values = _topup_row(new)
        for fixed in ("id", "tenant_id", "created_at_us"):
            values.pop(fixed)
        return await self._transition(
            topups, new.id, TopupStatus.PROCESSING, Step.TRANSFER, values, events
        )

    # -- the saga ------------------------------------------------------------

    async def postpone(
        self, kind: str, object_id: str, step: Step, *, attempts: int, next_attempt_at_us: int
    ) -> bool:
        """Record a failed run of `step`: try again at `next_attempt_at_us`."""
        table = _TABLES[kind]
        async with self.db.transaction() as conn:
            result = await conn.execute(
                table.update()
                .where(table.c.id == object_id, table.c.step == step.value)
                .values(attempts=attempts, next_attempt_at_us=next_attempt_at_us)
            )
        return bool(result.rowcount)

    async def due(self, now_us: int | None, *, limit: int = 100) -> list[Due]:
        """Objects with a step in progress whose next attempt is due (None: all of them)."""
        found: list[Due] = []
        async with self.db.read() as conn:
            for kind, table in _TABLES.items():
                query = sa.select(table.c.id, table.c.tenant_id).where(table.c.step.is_not(None))
                if now_us is not None:
                    query = query.where(table.c.next_attempt_at_us <= now_us)
                query = query.order_by(table.c.next_attempt_at_us).limit(limit)
                rows = (await conn.execute(query)).all()
                found.extend(Due(kind, r.id, r.tenant_id) for r in rows)
        return found

    async def _transition(
        self,
        table: sa.Table,
        object_id: str,
        status: str,
        step: Step | None,
        values: dict[str, Any],
        events: Sequence[Event],
        also: Callable[[AsyncConnection], Any] | None = None,
    ) -> bool:
        c = table.c
        at_step = c.step.is_(None) if step is None else c.step == step.value
        async with self.db.transaction() as conn:
            result = await conn.execute(
                table.update()
                .where(c.id == object_id, c.status == str(status), at_step)
                .values(values)
            )
            if result.rowcount != 1:
                return False
            if also is not None:
                await also(conn)
            for event in events:
                await append(conn, outbox, TOPIC_PAYMENTS, event)
        if events and self._on_commit is not None:
            self._on_commit()
        return True


async def _one(
    conn: AsyncConnection, table: sa.Table, object_id: str, *, for_update: bool = False
) -> sa.Row[Any] | None:
    query = sa.select(table).where(table.c.id == object_id)
    if for_update:
        query = query.with_for_update()
    return (await conn.execute(query)).first()


def _payment_row(p: Payment) -> dict[str, Any]:
    risk = p.risk
    return {
        "id": p.id,
        "tenant_id": p.tenant_id,
        "payer_account_id": p.payer_account_id,
        "payee_account_id": p.payee_account_id,
        "amount": p.amount,
        "currency": p.currency,
        "capture_method": p.capture_method.value,
        "status": p.status.value,
        "amount_captured": p.amount_captured,
        "amount_refunded": p.amount_refunded,
        "fee": p.fee,
        "description": p.description,
        "metadata": json.dumps(dict(p.metadata), sort_keys=True),
        "context": json.dumps(
            {"ip": p.context.ip, "device_id": p.context.device_id, "country": p.context.country}
        ),
        "risk": None
        if risk is None
        else json.dumps(
            {
                "decision": risk.decision,
                "score": risk.score,
                "reasons": list(risk.reasons),
                "rules_version": risk.rules_version,
            }
        ),
        "failure_code": p.failure_code,
        "failure_message": p.failure_message,
        "created_at_us": p.created_at_us,
        "updated_at_us": p.updated_at_us,
        "step": None if p.step is None else p.step.value,
        "step_amount": p.step_amount,
        "attempts": p.attempts,
        "next_attempt_at_us": p.next_attempt_at_us,
    }


def _payment(r: sa.Row[Any]) -> Payment:
    risk = None
    if r.risk:
        data = json.loads(r.risk)
        risk = RiskAssessment(
            decision=data["decision"],
            score=int(data["score"]),
            reasons=tuple(data["reasons"]),
            rules_version=data["rules_version"],
        )
    return Payment(
        id=r.id,
        tenant_id=r.tenant_id,
        payer_account_id=r.payer_account_id,
        payee_account_id=r.payee_account_id,
        amount=r.amount,
        currency=r.currency,
        capture_method=CaptureMethod(r.capture_method),
        status=PaymentStatus(r.status),
        amount_captured=r.amount_captured,
        amount_refunded=r.amount_refunded,
        fee=r.fee,
        description=r.description,
        metadata=json.loads(r.metadata),
        context=PaymentContext(**json.loads(r.context)),
        risk=risk,
        failure_code=r.failure_code,
        failure_message=r.failure_message,
        created_at_us=r.created_at_us,
        updated_at_us=r.updated_at_us,
        step=None if r.step is None else Step(r.step),
        step_amount=r.step_amount,
        attempts=r.attempts,
        next_attempt_at_us=r.next_attempt_at_us,
    )


def _refund_row(x: Refund) -> dict[str, Any]:
    return {
        "id": x.id,
        "tenant_id": x.tenant_id,
        "payment_id": x.payment_id,
        "amount": x.amount,
        "requested_amount": x.requested_amount,
        "currency": x.currency,
        "status": x.status.value,
        "reason": x.reason,
        "failure_code": x.failure_code,
        "payer_account_id": x.payer_account_id,
        "payee_account_id": x.payee_account_id,
        "created_at_us": x.created_at_us,
        "updated_at_us": x.updated_at_us,
        "step": None if x.step is None else x.step.value,
        "attempts": x.attempts,
        "next_attempt_at_us": x.next_attempt_at_us,
    }


def _refund(r: sa.Row[Any]) -> Refund:
    return Refund(
        id=r.id,
        tenant_id=r.tenant_id,
        payment_id=r.payment_id,
        amount=r.amount,
        requested_amount=r.requested_amount,
        currency=r.currency,
        status=RefundStatus(r.status),
        reason=r.reason,
        failure_code=r.failure_code,
        payer_account_id=r.payer_account_id,
        payee_account_id=r.payee_account_id,
        created_at_us=r.created_at_us,
        updated_at_us=r.updated_at_us,
        step=None if r.step is None else Step(r.step),
        attempts=r.attempts,
        next_attempt_at_us=r.next_attempt_at_us,
    )


def _topup_row(t: Topup) -> dict[str, Any]:
    return {
        "id": t.id,
        "tenant_id": t.tenant_id,
        "account_id": t.account_id,
        "amount": t.amount,
        "currency": t.currency,
        "status": t.status.value,
        "failure_code": t.failure_code,
        "created_at_us": t.created_at_us,
        "updated_at_us": t.updated_at_us,
        "step": None if t.step is None else t.step.value,
        "attempts": t.attempts,
        "next_attempt_at_us": t.next_attempt_at_us,
    }


def _topup(r: sa.Row[Any]) -> Topup:
    return Topup(
        id=r.id,
        tenant_id=r.tenant_id,
        account_id=r.account_id,
        amount=r.amount,
        currency=r.currency,
        status=TopupStatus(r.status),
        failure_code=r.failure_code,
        created_at_us=r.created_at_us,
        updated_at_us=r.updated_at_us,
        step=None if r.step is None else Step(r.step),
        attempts=r.attempts,
        next_attempt_at_us=r.next_attempt_at_us,
    )
