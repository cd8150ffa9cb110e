"""The features port and its SQL adapter: velocity windows and payers' history.

Velocity entries are keyed by payment id, so a payment counts once however
many events announce it, and recording it at decision time (approve and
review) and again from its events changes nothing the second time. A
``payment.failed`` or ``payment.canceled`` removes the entry: the money did
not move. History (first seen, succeeded count, countries, Welford mean and
M2 per currency) changes only on ``payment.succeeded``.

Each event id is applied once: on SQL the event id goes into ``inbox`` in the
same transaction as the effect (see :mod:`paymesh.platform.outbox`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from paymesh.platform import statements
from paymesh.platform.db import Database
from paymesh.platform.outbox import first_delivery
from paymesh.risk.domain import (
    AmountStats,
    DecidePayment,
    Dimension,
    FeatureNeeds,
    Features,
    PayerHistory,
    PayerStats,
    PaymentUpdate,
    SucceededPayment,
    WindowStats,
    dimension_value,
)
from paymesh.risk.ports import FeatureQuery
from paymesh.risk.tables import (
    inbox,
    list_entries,
    payer_countries,
    payer_stats,
    payer_stats_from_row,
    payers,
    velocity,
)

__all__ = [
    "MATCHES",
    "SqlFeatureStore",
    "list_matches",
    "record_entry",
    "windows_by_dimension",
]

_US = 1_000_000


def windows_by_dimension(needs: FeatureNeeds) -> dict[Dimension, list[int]]:
    """The windows to count, grouped by dimension, shortest first."""
    grouped: dict[Dimension, list[int]] = {}
    for dimension, window_s in needs.windows:
        grouped.setdefault(dimension, []).append(window_s)
    return {d: sorted(ws) for d, ws in grouped.items()}


# The list entries among (list, value) pairs: one query on the primary key
# (tenant, list, value), built once; callers filter the cross product it may
# over-select.
MATCHES = sa.select(list_entries.c.list, list_entries.c.value).where(
    list_entries.c.tenant_id == sa.bindparam("tenant_id"),
    list_entries.c.list.in_(sa.bindparam("lists", expanding=True)),
    list_entries.c.value.in_(sa.bindparam("values", expanding=True)),
)

_DIMENSION_COLUMN = {
    Dimension.PAYER: velocity.c.payer,
    Dimension.PAYEE: velocity.c.payee,
    Dimension.DEVICE: velocity.c.device,
    Dimension.IP: velocity.c.ip,
}


class SqlFeatureStore:
    """:class:`FeatureStore` on the risk database (SQLite or PostgreSQL)."""

    records_with_decisions = True
    records_with_reads = False
    reads_lists = True

    def __init__(self, db: Database, *, consumer: str) -> None:
        self._db = db
        self._consumer = consumer

    async def read(self, query: FeatureQuery) -> Features:
        payment, needs, now_us = query.payment, query.needs, query.now_us
        lists = query.lists
        history: PayerHistory | None = None
        matched: frozenset[tuple[str, str]] = frozenset()
        if not (needs.windows or needs.payer or lists):  # the rules read no feature
            return Features(now_us=now_us, windows={}, payer=None, lists=matched)
        async with self._db.read() as conn:
            # One read transaction: a statement for every window, one for the
            # history, one for the lists.
            windows = await _count(conn, payment, needs, now_us)
            if needs.payer:
                history = await _history(
                    conn, payment.tenant_id, payment.payer_account_id, payment.currency
                )
            if lists:
                matched = await list_matches(conn, payment.tenant_id, lists)
        return Features(now_us=now_us, windows=windows, payer=history, lists=matched)

    async def record(self, payment: DecidePayment, *, at_us: int) -> None:
        async with self._db.transaction() as conn:
            await record_entry(conn, payment, at_us)

    async def forget(self, payment: DecidePayment) -> None:
        v = velocity.c
        async with self._db.transaction() as conn:
            await conn.execute(
                velocity.delete().where(
                    v.tenant_id == payment.tenant_id, v.payment_id == payment.payment_id
                )
            )

    async def apply(self, event_id: str, update: PaymentUpdate, *, now_us: int) -> bool:
        async with self._db.transaction() as conn:
            if not await first_delivery(conn, inbox, self._consumer, event_id, now_us):
                return False
            if update.kind == "dropped":
                v = velocity.c
                await conn.execute(
                    velocity.delete().where(
                        v.tenant_id == update.payment.tenant_id,
                        v.payment_id == update.payment.payment_id,
                    )
                )
                return True
            await record_entry(conn, update.payment, update.at_us)
            if update.succeeded is not None:
                await _learn(conn, update.succeeded)
        return True

    async def prune(self, *, before_us: int) -> int:
        async with self._db.transaction(long=True) as conn:  # may delete many rows
            result = await conn.execute(velocity.delete().where(velocity.c.at_us < before_us))
        return int(result.rowcount or 0)

    async def get(self, tenant_id: str, payer_account_id: str, currency: str) -> PayerStats | None:
        """The payer's succeeded payments in `currency`, or None before the first."""
        c = payer_stats.c
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    sa.select(
                        c.tenant_id,
                        c.payer_account_id,
                        c.currency,
                        c.succeeded_count,
                        c.succeeded_amount,
                        c.last_event_at_us,
                    ).where(
                        c.tenant_id == tenant_id,
                        c.payer_account_id == payer_account_id,
                        c.currency == currency,
                    )
                )
            ).first()
        return None if row is None else payer_stats_from_row(row)

    async def history(
        self, tenant_id: str, payer_account_id: str, currency: str
    ) -> PayerHistory | None:
        """The payer's history as the rules see it."""
        async with self._db.read() as conn:
            return await _history(conn, tenant_id, payer_account_id, currency)

    async def window(
        self, payment: DecidePayment, dimension: Dimension, window_s: int, *, now_us: int
    ) -> WindowStats:
        """One window's stats for `payment` (tests and tools)."""
        needs = FeatureNeeds(windows=frozenset({(dimension, window_s)}))
        return (await self.read(FeatureQuery(payment, needs, now_us))).window(dimension, window_s)


async def list_matches(
    conn: AsyncConnection, tenant_id: str, pairs: Iterable[tuple[str, str]]
) -> frozenset[tuple[str, str]]:
    """Which (list, value) `pairs` are entries of the tenant's lists (one query)."""
    wanted = {(name, value) for name, value in pairs if value}
    if not wanted:
        return frozenset()
    params = {
        "tenant_id": tenant_id,
        "lists": sorted({n for n, _ in wanted}),
        "values": sorted({v for _, v in wanted}),
    }
    rows = (await conn.execute(MATCHES, params)).all()
    return frozenset((row.list, row.value) for row in rows) & frozenset(wanted)


@functools.cache
def _count_statement(shape: tuple[tuple[Dimension, int], ...]) -> sa.CompoundSelect[Any]:
    """The UNION ALL counting the windows of `shape`, built once per shape (the
    values are bound parameters: building a statement costs more than running it)."""
    v = velocity.c
    same = sa.case((v.currency == sa.bindparam("currency"), v.amount), else_=0)
    parts = [
        sa.select(
            sa.literal(k).label("k"),
            sa.func.count().label("n"),
            sa.func.coalesce(sa.func.sum(same), 0).label("total"),
        ).where(
            v.tenant_id == sa.bindparam("tenant_id"),
            _DIMENSION_COLUMN[dimension] == sa.bindparam(f"value_{k}"),
            v.at_us > sa.bindparam(f"floor_{k}"),
            v.payment_id != sa.bindparam("payment_id"),
        )
        for k, (dimension, _) in enumerate(shape)
    ]
    return sa.union_all(*parts)


async def _count(
    conn: AsyncConnection, payment: DecidePayment, needs: FeatureNeeds, now_us: int
) -> dict[tuple[Dimension, int], WindowStats]:
    shape: list[tuple[Dimension, int]] = []
    params: dict[str, Any] = {
        "tenant_id": payment.tenant_id,
        "currency": payment.currency,
        "payment_id": payment.payment_id,
    }
    for dimension, sizes in windows_by_dimension(needs).items():
        value = dimension_value(payment, dimension)
        if not value:
            continue
        for size in sizes:
            params[f"value_{len(shape)}"] = value
            params[f"floor_{len(shape)}"] = now_us - size * _US
            shape.append((dimension, size))
    if not shape:
        return {}
    rows = (await conn.execute(_count_statement(tuple(shape)), params)).all()
    return {shape[row.k]: WindowStats(count=int(row.n), amount=int(row.total)) for row in rows}


def _history_statement() -> sa.Select[Any]:
    p, s, c = payers.c, payer_stats.c, payer_countries.c
    usual = (
        sa.select(c.country)
        .where(c.tenant_id == p.tenant_id, c.payer_account_id == p.payer_account_id)
        .order_by(c.succeeded_count.desc(), c.country)
        .limit(1)
        .scalar_subquery()
    )
    return (
        sa.select(
            p.first_seen_us,
            p.succeeded_count,
            s.succeeded_count.label("n"),
            s.amount_mean,
            s.amount_m2,
            usual.label("usual"),
        )
        .select_from(
            payers.outerjoin(
                payer_stats,
                sa.and_(
                    s.tenant_id == p.tenant_id,
                    s.payer_account_id == p.payer_account_id,
                    s.currency == sa.bindparam("currency"),
                ),
            )
        )
        .where(
            p.tenant_id == sa.bindparam("tenant_id"), p.payer_account_id == sa.bindparam("payer")
        )
    )


_HISTORY = _history_statement()


async def _history(
    conn: AsyncConnection, tenant_id: str, payer_account_id: str, currency: str
) -> PayerHistory | None:
    params = {"tenant_id": tenant_id, "payer": payer_account_id, "currency": currency}
    row = (await conn.execute(_HISTORY, params)).first()
    if row is None:
        return None
    return PayerHistory(
        first_seen_us=row.first_seen_us,
        succeeded_count=row.succeeded_count,
        usual_country=row.usual or "",
        amounts=None
        if row.n is None
        else AmountStats(count=row.n, mean=row.amount_mean, m2=row.amount_m2),
    )


async def record_entry(conn: AsyncConnection, payment: DecidePayment, at_us: int) -> None:
    """Put `payment` in the velocity table inside the caller's transaction (once)."""
    row = {
        "tenant_id": payment.tenant_id,
        "payment_id": payment.payment_id,
        "payer": payment.payer_account_id,
        "payee": payment.payee_account_id,
        "device": payment.context.device_id,
        "ip": payment.context.ip,
        "currency": payment.currency,
        "amount": payment.amount,
        "at_us": at_us,
    }
    await conn.execute(statements.insert_new(velocity, conn.dialect.name), row)


async def _learn(conn: AsyncConnection, paid: SucceededPayment) -> None:
    dialect = conn.dialect.name
    await conn.execute(
        _count_payer(dialect),
        {
            "tenant_id": paid.tenant_id,
            "payer_account_id": paid.payer_account_id,
            "first_seen_us": paid.at_us,
            "succeeded_count": 1,
        },
    )
    if paid.country:
        await conn.execute(
            _count_payer_country(dialect),
            {
                "tenant_id": paid.tenant_id,
                "payer_account_id": paid.payer_account_id,
                "country": paid.country,
                "succeeded_count": 1,
            },
        )
    await conn.execute(
        _add_payer_stats(dialect),
        {
            "tenant_id": paid.tenant_id,
            "payer_account_id": paid.payer_account_id,
            "currency": paid.currency,
            "succeeded_count": 1,
            "succeeded_amount": paid.amount,
            "last_event_at_us": paid.at_us,
            "amount_mean": float(paid.amount),
            "amount_m2": 0.0,
        },
    )


# The upserts of _learn, built once per dialect (platform/statements.py says why).


@functools.cache
def _count_payer(dialect: str) -> Any:
    p = payers.c
    stmt = (sqlite_insert if dialect == "sqlite" else pg_insert)(payers)
    return stmt.on_conflict_do_update(
        index_elements=[p.tenant_id, p.payer_account_id],
        set_={
            "succeeded_count": p.succeeded_count + 1,
            "first_seen_us": sa.case(
                (stmt.excluded.first_seen_us < p.first_seen_us, stmt.excluded.first_seen_us),
                else_=p.first_seen_us,
            ),
        },
    )


@functools.cache
def _count_payer_country(dialect: str) -> Any:
    c = payer_countries.c
    stmt = (sqlite_insert if dialect == "sqlite" else pg_insert)(payer_countries)
    return stmt.on_conflict_do_update(
        index_elements=[c.tenant_id, c.payer_account_id, c.country],
        set_={"succeeded_count": c.succeeded_count + 1},
    )


@functools.cache
def _add_payer_stats(dialect: str) -> Any:
    s = payer_stats.c
    stmt = (sqlite_insert if dialect == "sqlite" else pg_insert)(payer_stats)
    new = stmt.excluded
    # Welford, in one statement so concurrent updates of one payer stay exact:
    # every right-hand side reads the row's old values.
    x = sa.cast(new.succeeded_amount, sa.Float)
    count = sa.cast(s.succeeded_count + 1, sa.Float)
    mean = s.amount_mean + (x - s.amount_mean) / count
    return stmt.on_conflict_do_update(
        index_elements=[s.tenant_id, s.payer_account_id, s.currency],
        set_={
            "succeeded_count": s.succeeded_count + 1,
            "succeeded_amount": s.succeeded_amount + new.succeeded_amount,
            # Events of one payer may arrive out of time order.
            "last_event_at_us": sa.case(
                (new.last_event_at_us > s.last_event_at_us, new.last_event_at_us),
                else_=s.last_event_at_us,
            ),
            "amount_mean": mean,
            "amount_m2": s.amount_m2 + (x - s.amount_mean) * (x - mean),
        },
    )
