"""The platform's database, outbox and inbox on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa

from paymesh.contracts.events import PAYMENT_SUCCEEDED, Event
from paymesh.platform.bus import InProcessBus
from paymesh.platform.db import Database
from paymesh.platform.outbox import OutboxRelay, append, first_delivery, inbox_table, outbox_table


def _tables() -> tuple[sa.MetaData, sa.Table, sa.Table]:
    md = sa.MetaData()
    return md, outbox_table(md), inbox_table(md)


async def _fresh(url: str) -> tuple[Database, sa.Table, sa.Table]:
    """A Database on `url` with the outbox and inbox tables; and those tables."""
    db = Database(url)
    md, outbox, inbox = _tables()
    async with db.engine.begin() as conn:
        await conn.run_sync(md.create_all)
    return db, outbox, inbox


class _Recording(InProcessBus):
    """A bus that only notes the ids of what is published to it, in `got`."""

    def __init__(self, got: list[str]) -> None:
        super().__init__()
        self._got = got

    async def publish(self, topic: str, event: Event) -> None:
        self._got.append(event.id)


def _event(n: int) -> Event:
    return Event(
        id=f"evt_{n}", source="test", type=PAYMENT_SUCCEEDED, subject=f"obj_{n % 2}",
        time="2026-01-01T00:00:00Z", tenant="ten_1", data={"n": n},
    )  # fmt: skip


async def test_outbox_rows_commit_with_the_change_and_are_relayed_once(db_url: str) -> None:
    db, outbox, _ = await _fresh(db_url)
    async with db.transaction() as conn:
        for n in range(3):
            await append(conn, outbox, "t", _event(n))
    try:
        async with db.transaction() as conn:
            await append(conn, outbox, "t", _event(99))
            raise RuntimeError("rolled back")
    except RuntimeError:
        pass
    bus = InProcessBus()
    got: list[str] = []

    async def handler(event: Event) -> None:
        got.append(event.id)

    bus.subscribe("t", "g", handler)
    await bus.start()
    relay = OutboxRelay(db, outbox, bus, service="test")
    assert await relay.relay_once() == 3
    assert await relay.relay_once() == 0
    import asyncio

    for _ in range(50):
        if len(got) == 3:
            break
        await asyncio.sleep(0.01)
    await bus.stop()
    await db.dispose()
    assert got == ["evt_0", "evt_1", "evt_2"]


async def test_inbox_accepts_an_event_id_once_per_consumer(db_url: str) -> None:
    db, _, inbox = await _fresh(db_url)
    async with db.transaction() as conn:
        assert await first_delivery(conn, inbox, "risk", "evt_1", 1) is True
        assert await first_delivery(conn, inbox, "risk", "evt_1", 2) is False
        assert await first_delivery(conn, inbox, "webhooks", "evt_1", 3) is True
    await db.dispose()


async def test_only_one_relay_leads_on_postgresql_and_a_standby_takes_over(pg_url: str) -> None:
    db, outbox, _ = await _fresh(pg_url)
    bus = InProcessBus()
    first = OutboxRelay(db, outbox, bus, service="test")
    second = OutboxRelay(db, outbox, bus, service="test")
    try:
        assert await first.is_leader() is True
        assert await second.is_leader() is False
        assert await first.is_leader() is True  # keeps the lead it holds
        await first.stop()  # the leader's session ends
        assert await second.is_leader() is True
    finally:
        await first.stop()
        await second.stop()
        await db.dispose()


async def _published_flags(db: Database, outbox: sa.Table) -> list[bool]:
    async with db.read() as conn:
        rows = await conn.execute(sa.select(outbox.c.published_at_us).order_by(outbox.c.seq))
        return [at is not None for (at,) in rows]


async def test_on_sqlite_the_relay_marks_lazily_and_a_restart_publishes_the_unmarked_again(
    sqlite_url: str,
) -> None:
    db, outbox, _ = await _fresh(sqlite_url)
    async with db.transaction() as conn:
        for n in range(3):
            await append(conn, outbox, "t", _event(n))
    got: list[str] = []
    relay = OutboxRelay(db, outbox, _Recording(got), service="test", mark_interval_s=3600)
    assert await relay.relay_once() == 3
    async with db.transaction() as conn:
        await append(conn, outbox, "t", _event(3))
    assert await relay.relay_once() == 1  # reads past what it published, unmarked
    assert got == ["evt_0", "evt_1", "evt_2", "evt_3"]
    assert await _published_flags(db, outbox) == [False] * 4  # no write yet
    # The process dies here: a new relay publishes the unmarked rows again.
    again = OutboxRelay(db, outbox, _Recording(got), service="test", mark_interval_s=3600)
    assert await again.relay_once() == 4
    assert await again.relay_once() == 0  # nothing new: now it marks what it published
    assert await _published_flags(db, outbox) == [True] * 4
    assert await OutboxRelay(db, outbox, _Recording(got), service="test").relay_once() == 0
    await db.dispose()


async def test_a_relay_that_stops_marks_what_it_published(sqlite_url: str) -> None:
    db, outbox, _ = await _fresh(sqlite_url)
    async with db.transaction() as conn:
        await append(conn, outbox, "t", _event(0))
    relay = OutboxRelay(db, outbox, InProcessBus(), service="test", mark_interval_s=3600)
    assert await relay.relay_once() == 1
    assert await _published_flags(db, outbox) == [False]
    await relay.stop()
    assert await _published_flags(db, outbox) == [True]
    await db.dispose()


async def test_a_relay_whose_database_starts_over_reads_it_from_the_start(
    sqlite_url: str,
) -> None:
    db, outbox, _ = await _fresh(sqlite_url)
    async with db.transaction() as conn:
        for n in range(3):
            await append(conn, outbox, "t", _event(n))
    got: list[str] = []
    relay = OutboxRelay(db, outbox, _Recording(got), service="test")
    assert await relay.relay_once() == 3
    async with db.transaction() as conn:  # the database is recreated under the relay
        await conn.execute(outbox.delete())
        await append(conn, outbox, "t", _event(7))
    assert await relay.relay_once() == 1
    assert got == ["evt_0", "evt_1", "evt_2", "evt_7"]
    await db.dispose()
