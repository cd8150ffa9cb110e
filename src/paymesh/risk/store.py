"""Where risk keeps its data, SQLAlchemy Core: decisions with their outbox, and the
payers' history features with the inbox of the payment events that fed them.

One decision per payment id (the primary key). :meth:`SqlDecisionStore.add`
inserts with ON CONFLICT DO NOTHING and, when another caller won the race,
reads the winner back in the same transaction: on PostgreSQL the conflicting
insert waits for the winner to commit and READ COMMITTED lets the next
statement see it; on SQLite writers are serialised by BEGIN IMMEDIATE. The
``risk.decision_made`` event is appended only by the winner, in its
transaction.

``payer_stats`` holds one row per (tenant, payer, currency).
:meth:`SqlPayerStatsStore.apply` records the event id in ``inbox`` and
updates the row in one transaction, so a redelivered event changes nothing:
on PostgreSQL a concurrent delivery of the same id waits on the inbox row
and then finds it taken.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from paymesh.contracts.events import TOPIC_RISK, Event
from paymesh.platform.db import Database
from paymesh.platform.outbox import append, first_delivery, inbox_table, outbox_table
from paymesh.risk.domain import Decision, Outcome, PayerStats, Reason, SucceededPayment

__all__ = [
    "DecisionStore",
    "PayerStatsStore",
    "SqlDecisionStore",
    "SqlPayerStatsStore",
    "decisions",
    "inbox",
    "metadata",
    "outbox",
    "payer_stats",
]

metadata = sa.MetaData()

decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("payment_id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("payer_account_id", sa.String(64), nullable=False),
    sa.Column("payee_account_id", sa.String(64), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("score", sa.Integer, nullable=False),
    sa.Column("reasons", sa.Text, nullable=False),
    sa.Column("rules_version", sa.String(64), nullable=False),
    sa.Column("decided_at_us", sa.BigInteger, nullable=False),
    sa.Index("ix_decisions_tenant_decided", "tenant_id", "decided_at_us"),
)

outbox = outbox_table(metadata)

payer_stats = sa.Table(
    "payer_stats",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("payer_account_id", sa.String(64), primary_key=True),
    sa.Column("currency", sa.String(3), primary_key=True),
    sa.Column("succeeded_count", sa.BigInteger, nullable=False),
    sa.Column("succeeded_amount", sa.BigInteger, nullable=False),
    sa.Column("last_event_at_us", sa.BigInteger, nullable=False),
)

inbox = inbox_table(metadata)


class DecisionStore(Protocol):
    """Decisions by payment id; the first one stored for a payment is final."""

    async def get(self, payment_id: str) -> Decision | None:
        """The decision for `payment_id`, whoever's it is, or None."""
        ...

    async def add(self, decision: Decision, event: Event) -> Decision:
        """Store `decision` with `event` unless one exists; return the stored decision."""
        ...


class SqlDecisionStore:
    """:class:`DecisionStore` on a SQLite or PostgreSQL database."""

    def __init__(self, db: Database, *, committed: Callable[[], None] | None = None) -> None:
        # `committed` is told when a new decision and its event have committed
        # (the app points it at the outbox relay so it publishes at once).
        self._db = db
        self._committed = committed

    async def get(self, payment_id: str) -> Decision | None:
        async with self._db.read() as conn:
            return await _select(conn, payment_id)

    async def add(self, decision: Decision, event: Event) -> Decision:
        async with self._db.transaction() as conn:
            insert = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
            result = await conn.execute(
                insert(decisions).values(_to_row(decision)).on_conflict_do_nothing()
            )
            if result.rowcount == 1:
                await append(conn, outbox, TOPIC_RISK, event)
                stored: Decision | None = decision
            else:
                stored = await _select(conn, decision.payment_id)
        if stored is None:  # pragma: no cover - a conflict means a committed row exists
            raise RuntimeError(f"decision for {decision.payment_id} vanished")
        if stored is decision and self._committed is not None:
            self._committed()
        return stored


async def _select(conn: AsyncConnection, payment_id: str) -> Decision | None:
    row = (
        await conn.execute(sa.select(decisions).where(decisions.c.payment_id == payment_id))
    ).first()
    return None if row is None else _from_row(row._mapping)


def _to_row(d: Decision) -> dict[str, Any]:
    return {
        "payment_id": d.payment_id,
        "tenant_id": d.tenant_id,
        "payer_account_id": d.payer_account_id,
        "payee_account_id": d.payee_account_id,
        "amount": d.amount,
        "currency": d.currency,
        "outcome": d.outcome.value,
        "score": d.score,
        "reasons": json.dumps(
            [{"code": r.code, "rule_id": r.rule_id, "message": r.message} for r in d.reasons]
        ),
        "rules_version": d.rules_version,
        "decided_at_us": d.decided_at_us,
    }


def _from_row(row: Any) -> Decision:
    return Decision(
        payment_id=row["payment_id"],
        tenant_id=row["tenant_id"],
        payer_account_id=row["payer_account_id"],
        payee_account_id=row["payee_account_id"],
        amount=row["amount"],
        currency=row["currency"],
        outcome=Outcome(row["outcome"]),
        score=row["score"],
        reasons=tuple(Reason(**r) for r in json.loads(row["reasons"])),
        rules_version=row["rules_version"],
        decided_at_us=row["decided_at_us"],
    )


class PayerStatsStore(Protocol):
    """The payers' history features, fed once per event id."""

    async def apply(self, event_id: str, payment: SucceededPayment, *, now_us: int) -> bool:
        """Count `payment` for its payer unless `event_id` was applied; True if applied."""
        ...

    async def get(self, tenant_id: str, payer_account_id: str, currency: str) -> PayerStats | None:
        """The payer's stats in `currency`, or None before its first success."""
        ...


class SqlPayerStatsStore:
    """:class:`PayerStatsStore` on a SQLite or PostgreSQL database."""

    def __init__(self, db: Database, *, consumer: str) -> None:
        self._db = db
        self._consumer = consumer

    async def apply(self, event_id: str, payment: SucceededPayment, *, now_us: int) -> bool:
        async with self._db.transaction() as conn:
            if not await first_delivery(conn, inbox, self._consumer, event_id, now_us):
                return False
            insert = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
            stmt = insert(payer_stats).values(
                tenant_id=payment.tenant_id,
                payer_account_id=payment.payer_account_id,
                currency=payment.currency,
                succeeded_count=1,
                succeeded_amount=payment.amount,
                last_event_at_us=payment.at_us,
            )
            c, new = payer_stats.c, stmt.excluded
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[c.tenant_id, c.payer_account_id, c.currency],
                    set_={
                        "succeeded_count": c.succeeded_count + 1,
                        "succeeded_amount": c.succeeded_amount + new.succeeded_amount,
                        # Events of one payer may arrive out of time order.
                        "last_event_at_us": sa.case(
                            (new.last_event_at_us > c.last_event_at_us, new.last_event_at_us),
                            else_=c.last_event_at_us,
                        ),
                    },
                )
            )
        return True

    async def get(self, tenant_id: str, payer_account_id: str, currency: str) -> PayerStats | None:
        c = payer_stats.c
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    sa.select(payer_stats).where(
                        c.tenant_id == tenant_id,
                        c.payer_account_id == payer_account_id,
                        c.currency == currency,
                    )
                )
            ).first()
        return None if row is None else PayerStats(**row._mapping)
