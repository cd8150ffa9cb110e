"""The payers' history features on SQLite and PostgreSQL: fed by payment events, each
event id applied once, through the store and through the running service's consumer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from paymesh.contracts.events import TOPIC_PAYMENTS, Event
from paymesh.platform.bus import InProcessBus
from paymesh.platform.db import Database
from paymesh.platform.migrations import upgrade
from paymesh.risk import app
from paymesh.risk.app import MIGRATIONS
from paymesh.risk.domain import PayerStats, amount_limit_rules
from paymesh.risk.events import CONSUMER, record_payment_event
from paymesh.risk.features import SqlFeatureStore
from paymesh.risk.store import SqlRiskStore
from paymesh.risk.tables import inbox
from paymesh.settings import Settings
from tests.conftest import free_port
from tests.fakes.clock import FixedClock
from tests.fakes.risk import risk_deps

RULES = amount_limit_rules({}, 1_000_000)

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    await upgrade(database, MIGRATIONS)
    yield database
    await database.dispose()


def payment_event(
    payment_id: str,
    *,
    type: str = "payment.succeeded",
    payer: str = "acct_payer",
    captured: int = 700,
    time: str = "2026-01-01T00:00:00Z",
) -> Event:
    return Event(
        id=f"evt_{payment_id}_{type}",
        source="/paymesh/payments",
        type=type,
        subject=payment_id,
        time=time,
        tenant="ten_1",
        data={
            "id": payment_id,
            "object": "payment",
            "status": type.removeprefix("payment."),
            "amount": 1_000,
            "amount_captured": captured,
            "currency": "USD",
            "payer_account_id": payer,
            "payee_account_id": "acct_payee",
        },
    )


async def test_a_succeeded_payment_counts_once_for_its_payer_however_often_it_arrives(
    db: Database,
) -> None:
    store, clock = SqlFeatureStore(db, consumer=CONSUMER), FixedClock()
    decisions = SqlRiskStore(db)
    first = payment_event("pay_1", captured=700, time="2026-01-01T00:00:01Z")
    second = payment_event("pay_2", captured=300, time="2026-01-01T00:00:00Z")
    applied = [
        await record_payment_event(e, deps=risk_deps(decisions, clock, RULES, store))
        for e in (first, first, second, first, second)
    ]
    assert applied == [True, False, True, False, False]
    assert await store.get("ten_1", "acct_payer", "USD") == PayerStats(
        tenant_id="ten_1",
        payer_account_id="acct_payer",
        currency="USD",
        succeeded_count=2,
        succeeded_amount=1_000,
        # The later event in time wins, whatever the order of arrival.
        last_event_at_us=T0 + 1_000_000,
    )


async def test_events_other_than_payment_succeeded_change_no_history(db: Database) -> None:
    store, clock = SqlFeatureStore(db, consumer=CONSUMER), FixedClock()
    decisions = SqlRiskStore(db)
    for kind in ("payment.requires_capture", "payment.failed", "payment.canceled"):
        await record_payment_event(
            payment_event("pay_1", type=kind), deps=risk_deps(decisions, clock, RULES, store)
        )
    for ignored in (payment_event("pay_3", type="refund.succeeded"), payment_event("pay_4")):
        if ignored.type == "payment.succeeded":
            del ignored.data["payer_account_id"]  # malformed
        assert not await record_payment_event(
            ignored, deps=risk_deps(decisions, clock, RULES, store)
        )
    assert await store.get("ten_1", "acct_payer", "USD") is None
    assert await store.history("ten_1", "acct_payer", "USD") is None
    async with db.read() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(inbox))).scalar() == 3


async def test_concurrent_deliveries_of_one_event_count_it_once(db: Database) -> None:
    store, clock = SqlFeatureStore(db, consumer=CONSUMER), FixedClock()
    decisions = SqlRiskStore(db)
    event = payment_event("pay_1")
    results = await asyncio.gather(
        *(
            record_payment_event(event, deps=risk_deps(decisions, clock, RULES, store))
            for _ in range(8)
        )
    )
    assert sorted(results) == [False] * 7 + [True]
    stats = await store.get("ten_1", "acct_payer", "USD")
    assert stats is not None
    assert (stats.succeeded_count, stats.succeeded_amount) == (1, 700)


async def test_the_running_service_consumes_payment_events_from_the_bus_once_each(
    db_url: str, tmp_path: Path
) -> None:
    settings = Settings(
        var_dir=tmp_path, risk={"database_url": db_url, "listen": f"127.0.0.1:{free_port()}"}
    )
    await app.migrate(settings)
    bus = InProcessBus(retry_delay_s=0.01)
    runtime = app.create(settings, bus=bus)  # subscribes before the bus starts
    await bus.start()
    await runtime.start()
    try:
        events = [payment_event(f"pay_{n}", captured=100 * n) for n in range(1, 4)]
        for _ in range(3):  # at-least-once: every event arrives three times
            for event in events:
                await bus.publish(TOPIC_PAYMENTS, event)
        await bus.publish(TOPIC_PAYMENTS, payment_event("pay_x", payer="acct_last"))
        for _ in range(500):  # one queue, in order: the last payer is seen last
            if await runtime.payer_stats.get("ten_1", "acct_last", "USD") is not None:
                break
            await asyncio.sleep(0.01)
        stats = await runtime.payer_stats.get("ten_1", "acct_payer", "USD")
    finally:
        await runtime.stop()
        await bus.stop()
    assert stats is not None
    assert (stats.succeeded_count, stats.succeeded_amount) == (3, 600)
