"""The webhooks store on SQLite and PostgreSQL: events applied once, deliveries claimed
under leases and the per-endpoint cap, an attempt and its consequences in one transaction."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from paymesh.contracts.events import Event
from paymesh.platform.clock import Clock
from paymesh.platform.db import Database
from paymesh.platform.migrations import upgrade
from paymesh.webhooks.app import MIGRATIONS
from paymesh.webhooks.domain import (
    AttemptResult,
    DeliveryStatus,
    Endpoint,
    EndpointStatus,
    RetryPolicy,
    after_attempt,
    delivery_id,
)
from paymesh.webhooks.events import CONSUMER, endpoint_disabled, reason_failing_since
from paymesh.webhooks.ports import Deps, EndpointPolicy, EndpointRecord
from paymesh.webhooks.sealing import SecretBox
from paymesh.webhooks.service import record_event
from paymesh.webhooks.store import SqlWebhooksStore
from paymesh.webhooks.tables import deliveries, endpoints, inbox, metadata, outbox
from tests.fakes.clock import FixedClock
from tests.integration.webhooks.conftest import payment_event

T0 = 1_767_225_600_000_000
LEASE = 60_000_000
POLICY = RetryPolicy(base_s=10, max_delay_s=100, window_s=3600, disable_after_s=30)


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    await upgrade(database, MIGRATIONS)
    yield database
    await database.dispose()


async def _endpoint(
    store: SqlWebhooksStore, id: str = "we_1", *, tenant: str = "ten_alice", events=("*",)
) -> None:  # type: ignore[no-untyped-def]
    box = SecretBox("test-key")
    ep = Endpoint(
        id=id, tenant_id=tenant, url=f"https://merchant.example/{id}", events=tuple(events),
        description="", status=EndpointStatus.ENABLED, created_at_us=T0,
    )  # fmt: skip
    await store.create_endpoint(EndpointRecord(ep, box.seal("whsec_x", id), None))


def _deps(store: SqlWebhooksStore, clock: Clock) -> Deps:
    return Deps(
        store=store,
        box=SecretBox("test-key"),
        policy=EndpointPolicy("development", allow_private=True, rotation_grace_s=60),
        clock=clock,
    )


async def _count(db: Database, table: sa.Table) -> int:
    async with db.read() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one())


async def test_an_event_makes_one_delivery_per_matching_endpoint_once_however_often_it_comes(
    db: Database,
) -> None:
    store, clock = SqlWebhooksStore(db, consumer=CONSUMER), FixedClock(T0)
    await _endpoint(store, "we_all")
    await _endpoint(store, "we_refunds", events=("refund.succeeded",))
    await _endpoint(store, "we_other_tenant", tenant="ten_bob")
    event = payment_event(1)
    results = [await record_event(event, deps=_deps(store, clock)) for _ in range(3)]
    assert results == [1, None, None]
    page, more = await store.list_deliveries("we_all", limit=10, starting_after="")
    assert [d.id for d in page] == [delivery_id("we_all", event.id)]
    assert not more
    assert await _count(db, deliveries) == 1
    assert await _count(db, inbox) == 1


async def test_internal_event_types_are_skipped_without_a_trace(db: Database) -> None:
    store, clock = SqlWebhooksStore(db, consumer=CONSUMER), FixedClock(T0)
    await _endpoint(store)
    internal = Event(
        id="evt_r1", source="paymesh.risk", type="risk.decision_made", subject="pay_1",
        time="2026-01-01T00:00:00Z", tenant="ten_alice",
    )  # fmt: skip
    assert await record_event(internal, deps=_deps(store, clock)) is None
    assert await _count(db, deliveries) == 0
    assert await _count(db, inbox) == 0


async def test_concurrent_deliveries_of_one_event_make_one_delivery(db: Database) -> None:
    store, clock = SqlWebhooksStore(db, consumer=CONSUMER), FixedClock(T0)
    await _endpoint(store)
    event = payment_event(1)
    results = await asyncio.gather(
        *(record_event(event, deps=_deps(store, clock)) for _ in range(6))
    )
    assert sorted(results, key=lambda r: r is None) == [1] + [None] * 5
    assert await _count(db, deliveries) == 1


async def test_claims_respect_the_per_endpoint_cap_and_leases(db: Database) -> None:
    store, clock = SqlWebhooksStore(db, consumer=CONSUMER), FixedClock(T0)
    await _endpoint(store, "we_1")
    await _endpoint(store, "we_2")
    for n in range(5):
        await record_event(payment_event(n), deps=_deps(store, clock))
    first = await store.claim(now_us=T0, limit=10, max_per_endpoint=2, lease_us=LEASE)
    per_endpoint = sorted(c.delivery.endpoint_id for c in first)
    assert per_endpoint == ["we_1", "we_1", "we_2", "we_2"]
    assert first[0].payload.startswith(b"{")
    # Leased ones are in flight: nothing more may start for either endpoint.
    assert await store.claim(now_us=T0 + 1, limit=10, max_per_endpoint=2, lease_us=LEASE) == []
    # A limit below what is due is honoured.
    assert len(await store.claim(now_us=T0, limit=1, max_per_endpoint=5, lease_us=LEASE)) == 1
    # Leases expire (a crashed worker): the deliveries are claimable again.
    later = await store.claim(now_us=T0 + LEASE + 1, limit=10, max_per_endpoint=2, lease_us=LEASE)
    assert len(later) == 4


async def test_deliveries_not_yet_due_are_not_claimed(db: Database) -> None:
    store, clock = SqlWebhooksStore(db, consumer=CONSUMER), FixedClock(T0)
    await _endpoint(store)
    await record_event(payment_event(1), deps=_deps(store, clock))
    assert await store.claim(now_us=T0 - 1, limit=10, max_per_endpoint=5, lease_us=LEASE) == []
    assert await store.next_due_at() == T0


async def _finish(store: SqlWebhooksStore, claimed, result: AttemptResult, now: int):  # type: ignore[no-untyped-def]
    def decide(d, enabled, since):  # type: ignore[no-untyped-def]
        return after_attempt(
            d, result, started_at_us=now, now_us=now, endpoint_enabled=enabled,
            failing_since_us=since, policy=POLICY, jitter=1.0,
        )  # fmt: skip

    return await store.finish(
        claimed, result, started_at_us=now, decide=decide,
        disabled_event=lambda ep, why: endpoint_disabled(ep, why, now_us=now),
        reason=reason_failing_since,
    )  # fmt: skip


async def test_an_endpoint_failing_long_enough_is_disabled_with_its_event_in_the_same_commit(
    db: Database,
) -> None:
    store, clock = SqlWebhooksStore(db, consumer=CONSUMER), FixedClock(T0)
    await _endpoint(store)
    await record_event(payment_event(1), deps=_deps(store, clock))
    await record_event(payment_event(2), deps=_deps(store, clock))
    fail = AttemptResult(status_code=500, error="http_500", latency_ms=3)
    [a, b] = await store.claim(now_us=T0, limit=10, max_per_endpoint=5, lease_us=LEASE)
    updated, _after, disabled = await _finish(store, a, fail, T0)
    assert (updated.status, disabled) == (DeliveryStatus.PENDING, None)
    assert updated.next_attempt_at_us == T0 + 10_000_000
    # 30 s later, still failing: the endpoint is disabled and everything pending fails.
    _updated, _after, disabled = await _finish(store, b, fail, T0 + 30_000_000)
    assert disabled is not None
    assert disabled.disabled_reason == reason_failing_since(T0)
    record = await store.get_endpoint("we_1")
    assert record is not None
    assert record.endpoint.status is EndpointStatus.DISABLED
    async with db.read() as conn:
        statuses = set((await conn.execute(sa.select(deliveries.c.status))).scalars())
        rows = (await conn.execute(sa.select(outbox.c.type, outbox.c.key))).all()
    assert statuses == {"failed"}
    assert [(r.type, r.key) for r in rows] == [("webhook_endpoint.disabled", "we_1")]
    # A disabled endpoint gets no new deliveries.
    assert await record_event(payment_event(3), deps=_deps(store, clock)) == 0


async def test_a_success_heals_the_endpoint(db: Database) -> None:
    store, clock = SqlWebhooksStore(db, consumer=CONSUMER), FixedClock(T0)
    await _endpoint(store)
    await record_event(payment_event(1), deps=_deps(store, clock))
    await record_event(payment_event(2), deps=_deps(store, clock))
    [a, b] = await store.claim(now_us=T0, limit=10, max_per_endpoint=5, lease_us=LEASE)
    await _finish(store, a, AttemptResult(500, "http_500", 1), T0)
    assert (await store.get_endpoint("we_1")).endpoint.failing_since_us == T0  # type: ignore[union-attr]
    updated, _, _ = await _finish(store, b, AttemptResult(204, "", 1), T0 + 1)
    assert updated.status is DeliveryStatus.SUCCEEDED
    assert (await store.get_endpoint("we_1")).endpoint.failing_since_us is None  # type: ignore[union-attr]
    async with db.read() as conn:
        assert (await conn.execute(sa.select(endpoints.c.status))).scalar_one() == "enabled"


@pytest.mark.postgres
async def test_concurrent_claimers_on_postgresql_share_out_deliveries_within_the_cap(
    pg_url: str,
) -> None:
    dbs = [Database(pg_url) for _ in range(4)]
    await upgrade(dbs[0], MIGRATIONS)
    try:
        stores = [SqlWebhooksStore(d, consumer=CONSUMER) for d in dbs]
        clock = FixedClock(T0)
        await _endpoint(stores[0])
        for n in range(20):
            await record_event(payment_event(n), deps=_deps(stores[0], clock))
        for _round in range(5):
            claims = await asyncio.gather(
                *(s.claim(now_us=T0, limit=10, max_per_endpoint=3, lease_us=LEASE) for s in stores)
            )
            ids = [c.delivery.id for batch in claims for c in batch]
            assert len(ids) == len(set(ids))
            async with dbs[0].read() as conn:
                leased = (
                    await conn.execute(
                        sa.select(sa.func.count())
                        .select_from(deliveries)
                        .where(deliveries.c.lease_until_us.is_not(None))
                    )
                ).scalar_one()
            assert leased == 3
    finally:
        for d in dbs:
            await d.dispose()


async def test_the_migrations_create_exactly_the_tables_the_store_declares(db: Database) -> None:
    def diff(sync_conn: sa.Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(sync_conn), metadata))

    async with db.read() as conn:
        assert await conn.run_sync(diff) == []


async def test_pruning_forgets_old_finished_deliveries_and_events_but_keeps_pending_ones(
    db: Database,
) -> None:
    store, clock = SqlWebhooksStore(db, consumer=CONSUMER), FixedClock(T0)
    await _endpoint(store)
    await record_event(payment_event(1), deps=_deps(store, clock))
    await record_event(payment_event(2), deps=_deps(store, clock))
    [done, waiting] = await store.claim(now_us=T0, limit=10, max_per_endpoint=5, lease_us=LEASE)
    await _finish(store, done, AttemptResult(200, "", 1), T0)
    await _finish(store, waiting, AttemptResult(500, "http_500", 1), T0)
    clock.advance(10)
    await record_event(payment_event(3), deps=_deps(store, clock))  # young: kept

    gone = await store.prune(before_us=T0 + 1)
    # The finished delivery (its attempt goes with it), its event, two inbox rows.
    assert gone == 1 + 1 + 2
    remaining, _ = await store.list_deliveries("we_1", limit=10, starting_after="")
    assert sorted(d.event_id for d in remaining) == sorted(
        [payment_event(2).id, payment_event(3).id]
    )
    assert await store.get_event(payment_event(1).id) is None
    assert await store.get_event(payment_event(2).id) is not None  # a pending delivery needs it
    assert await store.prune(before_us=T0 + 1) == 0
