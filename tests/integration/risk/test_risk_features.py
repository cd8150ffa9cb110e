"""The features on SQLite, PostgreSQL and the real Redis: a payment counts once in its
velocity windows however often and however it is announced, windows end exactly at
their size, a failed payment leaves them, and the payer's history follows succeeded
payments (Welford mean and variance, usual country)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import pytest
import redis.asyncio as aioredis

from paymesh.contracts.events import Event, format_time
from paymesh.platform.db import Database
from paymesh.platform.migrations import upgrade
from paymesh.risk.app import MIGRATIONS
from paymesh.risk.domain import (
    DecidePayment,
    Dimension,
    FeatureNeeds,
    PaymentContext,
    WindowStats,
    amount_limit_rules,
    welford,
)
from paymesh.risk.events import CONSUMER, record_payment_event
from paymesh.risk.features import SqlFeatureStore
from paymesh.risk.ports import FeatureQuery, FeatureStore
from paymesh.risk.redis_features import RedisFeatureStore
from paymesh.risk.service import decide_payment
from paymesh.risk.store import SqlRiskStore
from tests.fakes.clock import FixedClock
from tests.fakes.risk import risk_caller, risk_deps

NO_RULES = amount_limit_rules({}, 10**9)
REDIS_URL = "redis://127.0.0.1:6379/0"
T0 = 1_800_000_000_000_000
SECOND = 1_000_000


@dataclass
class Backend:
    features: FeatureStore
    decisions: SqlRiskStore
    clock: FixedClock

    async def deliver(self, event: Event) -> bool:
        return await record_payment_event(
            event, deps=risk_deps(self.decisions, self.clock, NO_RULES, self.features)
        )

    async def stats(
        self, payment: DecidePayment, dimension: Dimension, window_s: int
    ) -> WindowStats:
        needs = FeatureNeeds(windows=frozenset({(dimension, window_s)}))
        features = await self.features.read(FeatureQuery(payment, needs, self.clock.now_us()))
        return features.window(dimension, window_s)


@pytest.fixture(params=["sql", "redis"])
async def backend(request: pytest.FixtureRequest, db_url: str) -> AsyncIterator[Backend]:
    db = Database(db_url)
    await upgrade(db, MIGRATIONS)
    prefix = f"paymesh:test:{uuid.uuid4().hex}"
    features: FeatureStore
    if request.param == "redis":
        features = RedisFeatureStore(REDIS_URL, prefix=prefix, retention_s=2 * 86_400)
    else:
        features = SqlFeatureStore(db, consumer=CONSUMER)
    try:
        yield Backend(features, SqlRiskStore(db), FixedClock(T0))
    finally:
        if isinstance(features, RedisFeatureStore):
            await features.close()
            client = aioredis.from_url(REDIS_URL)
            keys = [k async for k in client.scan_iter(match=prefix + ":*")]
            if keys:
                await client.delete(*keys)
            await client.aclose()
        await db.dispose()


def pay(
    payment_id: str, amount: int = 1_000, currency: str = "USD", payer: str = "acct_a"
) -> DecidePayment:
    return DecidePayment(
        payment_id,
        "ten_1",
        payer,
        "acct_shop",
        amount,
        currency,
        PaymentContext(ip="192.0.2.1", device_id="dev_1", country="US"),
    )


def event(
    payment_id: str,
    type: str,
    *,
    amount: int = 1_000,
    at_us: int = T0,
    payer: str = "acct_a",
    currency: str = "USD",
    event_id: str | None = None,
) -> Event:
    return Event(
        id=event_id or f"evt_{payment_id}_{type}",
        source="/paymesh/payments",
        type=type,
        subject=payment_id,
        time=format_time(at_us),
        tenant="ten_1",
        data={
            "id": payment_id,
            "amount": amount,
            "amount_captured": amount,
            "currency": currency,
            "payer_account_id": payer,
            "payee_account_id": "acct_shop",
        },
    )


async def test_a_payment_counts_once_under_redelivery_and_several_events(backend: Backend) -> None:
    first = event("pay_1", "payment.requires_capture")
    assert await backend.deliver(first)
    assert not await backend.deliver(first)  # the same event id again
    assert await backend.deliver(event("pay_1", "payment.succeeded"))  # another event, same payment
    await backend.features.record(pay("pay_1"), at_us=T0)  # and at decision time
    assert await backend.stats(pay("pay_9"), Dimension.PAYER, 60) == WindowStats(1, 1_000)
    assert await backend.stats(pay("pay_9"), Dimension.IP, 60) == WindowStats(0, 0)  # no context
    await backend.features.record(pay("pay_2", 500), at_us=T0)
    await backend.deliver(event("pay_2", "payment.succeeded", amount=500))
    assert await backend.stats(pay("pay_9"), Dimension.PAYER, 60) == WindowStats(2, 1_500)
    assert await backend.stats(pay("pay_9"), Dimension.DEVICE, 60) == WindowStats(1, 500)


async def test_concurrent_deliveries_of_one_event_count_it_once(backend: Backend) -> None:
    e = event("pay_1", "payment.succeeded")
    results = await asyncio.gather(*(backend.deliver(e) for _ in range(8)))
    assert sorted(results) == [False] * 7 + [True]
    assert await backend.stats(pay("pay_9"), Dimension.PAYER, 3600) == WindowStats(1, 1_000)
    features = await backend.features.read(FeatureQuery(pay("pay_9"), FeatureNeeds(payer=True), T0))
    assert features.payer is not None
    assert features.payer.succeeded_count == 1


async def test_a_window_holds_entries_younger_than_its_size_only(backend: Backend) -> None:
    await backend.features.record(pay("pay_old"), at_us=T0 - 60 * SECOND)
    await backend.features.record(pay("pay_new", 300), at_us=T0 - 60 * SECOND + 1)
    await backend.features.record(pay("pay_eur", 700, "EUR"), at_us=T0 - SECOND)
    assert await backend.stats(pay("pay_9"), Dimension.PAYER, 60) == WindowStats(2, 300)
    assert await backend.stats(pay("pay_9"), Dimension.PAYER, 3600) == WindowStats(3, 1_300)


async def test_the_payment_being_decided_is_not_in_its_own_windows(backend: Backend) -> None:
    await backend.features.record(pay("pay_1"), at_us=T0)
    assert await backend.stats(pay("pay_1"), Dimension.PAYER, 60) == WindowStats(0, 0)
    assert await backend.stats(pay("pay_2"), Dimension.PAYER, 60) == WindowStats(1, 1_000)


async def test_a_failed_or_canceled_payment_leaves_the_windows(backend: Backend) -> None:
    for n in (1, 2, 3):
        await backend.features.record(pay(f"pay_{n}"), at_us=T0)
    assert await backend.deliver(event("pay_1", "payment.failed"))
    assert await backend.deliver(event("pay_2", "payment.canceled"))
    assert await backend.stats(pay("pay_9"), Dimension.PAYER, 60) == WindowStats(1, 1_000)


async def test_succeeded_payments_build_the_payers_history(backend: Backend) -> None:
    amounts = [1_000, 1_200, 800, 5_000]
    for n, amount in enumerate(amounts):
        # Risk decided pay_n from a country: the history takes it from the decision.
        await backend.features.record(pay(f"pay_{n}", amount), at_us=T0)
        await backend.deliver(
            event(f"pay_{n}", "payment.succeeded", amount=amount, at_us=T0 + n * SECOND)
        )
    await backend.deliver(
        event("pay_x", "payment.succeeded", amount=9, currency="EUR", at_us=T0 - SECOND)
    )
    features = await backend.features.read(FeatureQuery(pay("pay_9"), FeatureNeeds(payer=True), T0))
    history = features.payer
    assert history is not None
    assert (history.first_seen_us, history.succeeded_count) == (T0 - SECOND, 5)
    expected = None
    for amount in amounts:
        expected = welford(expected, amount)
    assert expected is not None
    assert history.amounts is not None
    assert history.amounts.count == 4
    assert history.amounts.mean == pytest.approx(expected.mean)
    assert history.amounts.m2 == pytest.approx(expected.m2)
    none = await backend.features.read(
        FeatureQuery(pay("pay_9", payer="acct_new"), FeatureNeeds(payer=True), T0)
    )
    assert none.payer is None


async def test_the_usual_country_is_the_most_frequent_of_the_decided_succeeded_payments(
    backend: Backend,
) -> None:
    rules = amount_limit_rules({}, 10**9)
    for n, country in enumerate(["FR", "DE", "FR", "DE", "FR"]):
        cmd = replace(pay(f"pay_{n}"), context=PaymentContext(country=country))
        await decide_payment(
            cmd,
            caller=risk_caller(),
            deps=risk_deps(backend.decisions, backend.clock, rules, backend.features),
        )
        await backend.deliver(event(f"pay_{n}", "payment.succeeded"))
    features = await backend.features.read(FeatureQuery(pay("pay_9"), FeatureNeeds(payer=True), T0))
    assert features.payer is not None
    assert features.payer.usual_country == "FR"
    # Decided, approved, recorded at decision time: five entries, not ten.
    assert await backend.stats(pay("pay_9"), Dimension.PAYER, 60) == WindowStats(5, 5_000)


@pytest.fixture
async def sql_backend(db_url: str) -> AsyncIterator[Backend]:
    """SQL features only: Redis trims its sorted sets on every add and expires idle keys."""
    db = Database(db_url)
    await upgrade(db, MIGRATIONS)
    try:
        yield Backend(SqlFeatureStore(db, consumer=CONSUMER), SqlRiskStore(db), FixedClock(T0))
    finally:
        await db.dispose()


async def test_pruning_forgets_entries_older_than_the_retention_only(
    sql_backend: Backend,
) -> None:
    backend = sql_backend
    await backend.features.record(pay("pay_old"), at_us=T0 - 2 * SECOND)
    await backend.features.record(pay("pay_edge"), at_us=T0 - SECOND)
    assert await backend.features.prune(before_us=T0 - SECOND) == 1
    assert await backend.stats(pay("pay_9"), Dimension.PAYER, 3600) == WindowStats(1, 1_000)
