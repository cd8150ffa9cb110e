"""Where decisions live: the ``decisions`` table and the outbox, SQLAlchemy Core.

One decision per payment id (the primary key). :meth:`SqlDecisionStore.add`
inserts with ON CONFLICT DO NOTHING and, when another caller won the race,
reads the winner back in the same transaction: on PostgreSQL the conflicting
insert waits for the winner to commit and READ COMMITTED lets the next
statement see it; on SQLite writers are serialised by BEGIN IMMEDIATE. The
``risk.decision_made`` event is appended only by the winner, in its
transaction.
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
from paymesh.platform.outbox import append, outbox_table
from paymesh.risk.domain import Decision, Outcome, Reason

__all__ = ["DecisionStore", "SqlDecisionStore", "decisions", "metadata", "outbox"]

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
