"""The outbox relay's gauges: rows waiting to be published and the age of the oldest, from
the relay's own read (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY

from paymesh.contracts.events import PAYMENT_SUCCEEDED, Event
from paymesh.platform.bus import InProcessBus
from paymesh.platform.db import Database
from paymesh.platform.kafka import KafkaBus, KafkaOptions
from paymesh.platform.outbox import OutboxRelay, append, outbox_table
from tests.fakes.clock import FixedClock


def _event(n: int) -> Event:
    return Event(
        id=f"evt_{n}", source="test", type=PAYMENT_SUCCEEDED, subject=f"obj_{n}",
        time="2026-01-01T00:00:00Z", tenant="ten_1", data={"n": n},
    )  # fmt: skip


def _gauges(service: str) -> tuple[float | None, float | None]:
    labels = {"service": service}
    return (
        REGISTRY.get_sample_value("paymesh_outbox_pending_rows", labels),
        REGISTRY.get_sample_value("paymesh_outbox_oldest_pending_age_seconds", labels),
    )


async def _outbox(db: Database, rows: int, clock: FixedClock) -> sa.Table:
    md = sa.MetaData()
    outbox = outbox_table(md)
    async with db.engine.begin() as conn:
        await conn.run_sync(md.create_all)
    async with db.transaction() as conn:
        for n in range(rows):  # the first is the oldest: 10 s before now, then 1 s apart
            await append(conn, outbox, "t", _event(n), now_us=clock.now_us() - (10 - n) * 10**6)
    return outbox


def _unreachable_bus() -> KafkaBus:
    """A real bus that cannot publish (never started): every publish raises."""
    return KafkaBus(KafkaOptions(bootstrap_servers="127.0.0.1:9"))


async def test_rows_the_relay_cannot_publish_show_as_pending_with_the_oldest_age(
    db_url: str,
) -> None:
    db, clock = Database(db_url), FixedClock()
    try:
        outbox = await _outbox(db, 3, clock)
        stuck = OutboxRelay(db, outbox, _unreachable_bus(), service="obx-a", clock=clock)
        with pytest.raises(RuntimeError):
            await stuck.relay_once()
        assert _gauges("obx-a") == (3, 10)
        clock.advance(5)  # the next pass sees them older
        with pytest.raises(RuntimeError):
            await stuck.relay_once()
        assert _gauges("obx-a") == (3, 15)
        relay = OutboxRelay(db, outbox, InProcessBus(), service="obx-a", clock=clock)
        assert await relay.relay_once() == 3
        assert _gauges("obx-a") == (0, 0)
    finally:
        await db.dispose()


async def test_a_backlog_larger_than_a_batch_is_counted_whole(db_url: str) -> None:
    db, clock = Database(db_url), FixedClock()
    try:
        outbox = await _outbox(db, 5, clock)
        relay = OutboxRelay(
            db, outbox, _unreachable_bus(), service="obx-b", clock=clock, batch_size=2
        )
        with pytest.raises(RuntimeError):
            await relay.relay_once()
        assert _gauges("obx-b") == (5, 10)
    finally:
        await db.dispose()
