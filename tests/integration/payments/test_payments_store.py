"""The payments store on SQLite and PostgreSQL: round trips, conditional transitions, refunds."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from paymesh.payments import domain, service
from paymesh.payments.app import MIGRATIONS
from paymesh.payments.domain import (
    CaptureMethod,
    CreateP2PTransfer,
    CreatePayment,
    CreatePayout,
    CreateRefund,
    CreateTopup,
    Payment,
    PaymentContext,
    PaymentStatus,
    Refund,
    RefundStatus,
    RiskAssessment,
    Step,
    TenantFees,
)
from paymesh.payments.errors import AmountExceedsRefundable, InvalidRequest
from paymesh.payments.messages import payment_events, topup_events
from paymesh.payments.saga import Deps
from paymesh.payments.store import SqlPaymentsStore, metadata
from paymesh.platform.db import Database
from paymesh.platform.identity import Caller
from paymesh.platform.migrations import upgrade
from tests.fakes.clock import FixedClock
from tests.fakes.payments_ports import FakeLedger, FakeRisk

NOW = 1_700_000_000_000_000
ALICE = Caller(tenant_id="ten_a", client_id="cli_a")


def _payment(pid: str = "pay_1") -> Payment:
    return domain.new_payment(dataclasses.replace(_payment_cmd(), id=pid), "ten_a", NOW)


def _payment_cmd() -> CreatePayment:
    return CreatePayment(
        id="pay_1",
        payer_account_id="acct_payer",
        payee_account_id="acct_payee",
        amount=1_000,
        currency="EUR",
        capture_method=CaptureMethod.MANUAL,
        description="two coffees",
        metadata={"order": "o-17"},
        context=PaymentContext(ip="10.0.0.1", device_id="dev_9", country="FR"),
    )


async def test_the_migrations_build_exactly_the_stores_tables(store: SqlPaymentsStore) -> None:
    def diff(conn: Any) -> list[Any]:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))

    async with store.db.read() as conn:
        assert await conn.run_sync(diff) == []


async def test_a_payment_round_trips_with_every_field(store: SqlPaymentsStore) -> None:
    p = dataclasses.replace(
        _payment(), risk=RiskAssessment("review", 61, ("new_device", "velocity"), "rules-7")
    )
    assert await store.add("payment", p) is None
    assert await store.get_payment("pay_1") == p
    assert await store.get_payment("pay_nope") is None


async def test_adding_a_taken_id_answers_the_stored_payment(store: SqlPaymentsStore) -> None:
    p = _payment()
    await store.add("payment", p)
    assert await store.add("payment", dataclasses.replace(p, amount=5)) == p


async def test_two_completions_of_one_step_make_one_transition_and_one_event(
    store: SqlPaymentsStore, event_types: Any
) -> None:
    p, _ = domain.apply_risk(_payment(), RiskAssessment("approve"), NOW)
    await store.add("payment", p)
    done, types = domain.complete_step(p, NOW + 1)
    events = payment_events(done, types, NOW + 1)
    results = await asyncio.gather(
        *[store.save_payment(done, status=p.status, step=p.step, events=events) for _ in range(5)]
    )
    assert sorted(results) == [False, False, False, False, True]
    stored = await store.get_payment("pay_1")
    assert stored is not None
    assert (stored.status, stored.step) == (PaymentStatus.REQUIRES_CAPTURE, None)
    assert await event_types("pay_1") == ["payment.requires_capture"]


async def test_a_step_starts_only_from_the_expected_status_and_no_step(
    store: SqlPaymentsStore,
) -> None:
    p = _payment()
    await store.add("payment", p)
    # The payment is still at the risk step: starting a capture must not overwrite it.
    capturing = dataclasses.replace(
        p, status=PaymentStatus.REQUIRES_CAPTURE, step=Step.CAPTURE, step_amount=10
    )
    assert not await store.save_payment(capturing, status=PaymentStatus.REQUIRES_CAPTURE, step=None)
    stored = await store.get_payment("pay_1")
    assert stored is not None
    assert stored.step is Step.RISK


async def test_a_postponed_step_is_due_only_when_its_time_comes(store: SqlPaymentsStore) -> None:
    p = dataclasses.replace(_payment(), next_attempt_at_us=NOW)
    await store.add("payment", p)
    assert await store.postpone(
        "payment", "pay_1", Step.RISK, attempts=1, next_attempt_at_us=NOW + 10
    )
    assert await store.due(NOW + 9) == []
    assert [d.id for d in await store.due(NOW + 10)] == ["pay_1"]
    assert [d.tenant_id for d in await store.due(None)] == ["ten_a"]
    # A step that already moved on is not postponed.
    assert not await store.postpone("payment", "pay_1", Step.HOLD, attempts=1, next_attempt_at_us=0)


async def test_a_topup_round_trips(store: SqlPaymentsStore) -> None:
    t = domain.new_topup(CreateTopup("tu_1", "acct_1", 700, "JPY"), "ten_a", NOW)
    assert await store.add("topup", t) is None
    assert await store.get("topup", "tu_1") == t
    assert await store.add("topup", dataclasses.replace(t, amount=1)) == t


@pytest.fixture
async def pg_deps(pg_url: str) -> AsyncIterator[Deps]:
    db = Database(pg_url, pool_size=20)
    await upgrade(db, MIGRATIONS)
    ledger = FakeLedger()
    ledger.open("acct_payer", "EUR", tenant_id="ten_a", balance=10_000)
    ledger.open("acct_payee", "EUR", tenant_id="ten_a", balance=10_000)
    try:
        yield Deps(store=SqlPaymentsStore(db), ledger=ledger, risk=FakeRisk(), clock=FixedClock())
    finally:
        await db.dispose()


@pytest.mark.postgres
async def test_concurrent_refunds_cannot_exceed_what_was_captured(pg_deps: Deps) -> None:
    cmd = CreatePayment(
        id="pay_1",
        payer_account_id="acct_payer",
        payee_account_id="acct_payee",
        amount=1_000,
        currency="EUR",
        capture_method=CaptureMethod.AUTOMATIC,
    )
    p = await service.create_payment(cmd, caller=ALICE, deps=pg_deps)
    assert p.status is PaymentStatus.SUCCEEDED

    async def refund(n: int) -> str:
        try:
            r = await service.create_refund(
                CreateRefund(f"re_{n}", "pay_1", 100), caller=ALICE, deps=pg_deps
            )
        except AmountExceedsRefundable:
            return "refused"
        return r.status.value

    outcomes = await asyncio.gather(*[refund(n) for n in range(30)])
    assert outcomes.count(RefundStatus.SUCCEEDED.value) == 10
    assert outcomes.count("refused") == 20
    p = await service.get_payment("pay_1", caller=ALICE, deps=pg_deps)
    assert p.amount_refunded == 1_000
    ledger = pg_deps.ledger
    assert isinstance(ledger, FakeLedger)
    assert ledger.balance("acct_payee") == 10_000


async def test_a_payout_and_a_transfer_round_trip_and_step_conditionally(
    store: SqlPaymentsStore,
) -> None:
    payout = domain.new_payout(CreatePayout("po_1", "acct_1", 700, "JPY"), "ten_a", NOW)
    assert await store.add("payout", payout) is None
    assert await store.get("payout", "po_1") == payout
    assert await store.add("payout", dataclasses.replace(payout, amount=1)) == payout
    held, _ = domain.apply_payout_ledger(payout, "ok", NOW + 1)
    assert await store.save("payout", held, status=payout.status, step=Step.HOLD)
    assert not await store.save("payout", held, status=payout.status, step=Step.HOLD)
    assert await store.get("payout", "po_1") == held
    cmd = CreateP2PTransfer("tr_1", "acct_1", "acct_2", 5, "EUR")
    transfer = domain.new_p2p_transfer(cmd, "ten_a", NOW)
    assert await store.add("transfer", transfer) is None
    assert await store.get("transfer", "tr_1") == transfer
    assert {d.kind for d in await store.due(None)} == {"payout", "transfer"}


async def test_a_tenants_fees_are_replaced_and_read_back(store: SqlPaymentsStore) -> None:
    assert await store.get_fees("ten_a") is None
    await store.set_fees(TenantFees("ten_a", 30, 290, NOW))
    await store.set_fees(TenantFees("ten_a", 10, 0, NOW + 1))
    assert await store.get_fees("ten_a") == TenantFees("ten_a", 10, 0, NOW + 1)


async def test_a_payment_keeps_its_fee_schedule_and_expiry(store: SqlPaymentsStore) -> None:
    cmd = dataclasses.replace(_payment_cmd(), id="pay_9")
    p = domain.new_payment(
        cmd, "ten_a", NOW, fees=TenantFees("ten_a", 3, 40), authorization_ttl_us=10
    )
    await store.add("payment", p)
    stored = await store.get_payment("pay_9")
    assert stored is not None
    assert (stored.fee_fixed, stored.fee_basis_points, stored.expires_at_us) == (3, 40, NOW + 10)


async def test_expired_authorizations_are_found_only_when_due_and_idle(
    store: SqlPaymentsStore,
) -> None:
    p = dataclasses.replace(
        _payment(), status=PaymentStatus.REQUIRES_CAPTURE, step=None, expires_at_us=NOW + 10
    )
    await store.add("payment", p)
    assert await store.expired_authorizations(NOW + 9) == []
    assert [d.id for d in await store.expired_authorizations(NOW + 10)] == ["pay_1"]
    busy = dataclasses.replace(p, step=Step.CAPTURE)
    assert await store.save_payment(busy, status=p.status, step=None)
    assert await store.expired_authorizations(NOW + 10) == []


async def test_events_are_listed_per_tenant_newest_first(store: SqlPaymentsStore) -> None:
    for n, tenant in enumerate(("ten_a", "ten_b", "ten_a", "ten_a")):
        t = domain.new_topup(CreateTopup(f"tu_{n}", "acct_1", 1, "USD"), tenant, NOW)
        await store.add("topup", t)
        done, types = domain.settle_topup(dataclasses.replace(t, step=Step.TRANSFER), "ok", NOW)
        await store.save(
            "topup", done, status=t.status, step=Step.BANK, events=topup_events(done, types, NOW)
        )
    events, more = await store.list_events("ten_a", limit=2)
    assert ([e.subject for e in events], more) == (["tu_3", "tu_2"], True)
    older, more = await store.list_events("ten_a", limit=2, before_seq=events[-1].seq)
    assert ([e.subject for e in older], more) == (["tu_0"], False)
    assert await store.get_event("ten_b", events[0].id) is None
    found = await store.get_event("ten_a", events[0].id)
    assert found is not None
    assert found.type == "topup.succeeded"


def _saga_object(kind: str, n: int, tenant: str, at: int) -> Any:
    """A new refund, top-up, payout or transfer numbered `n`, made at `at`."""
    if kind == "refund":
        return Refund(
            id=f"re_{n}",
            tenant_id=tenant,
            payment_id="pay_1",
            amount=1,
            currency="USD",
            status=RefundStatus.SUCCEEDED,
            created_at_us=at,
            updated_at_us=at,
        )
    if kind == "topup":
        return domain.new_topup(CreateTopup(f"tu_{n}", "acct_1", 1, "USD"), tenant, at)
    if kind == "payout":
        return domain.new_payout(CreatePayout(f"po_{n}", "acct_1", 1, "USD"), tenant, at)
    cmd = CreateP2PTransfer(f"tr_{n}", "acct_1", "acct_2", 1, "USD")
    return domain.new_p2p_transfer(cmd, tenant, at)


@pytest.mark.parametrize("kind", ["payout", "refund", "topup", "transfer"])
async def test_refunds_topups_payouts_and_transfers_are_listed_per_tenant_newest_first(
    deps: Deps, kind: str
) -> None:
    store = deps.store
    # Two made in the same microsecond: the id breaks the tie, on every page the same way.
    made = [(0, "ten_a", NOW), (1, "ten_b", NOW + 1), (2, "ten_a", NOW + 2), (3, "ten_a", NOW + 2)]
    objects = {}
    for n, tenant, at in made:
        obj = _saga_object(kind, n, tenant, at)
        assert await store.add(kind, obj) is None
        objects[n] = obj
    list_ = functools.partial(service.list_objects, kind)
    page, more = await list_(caller=ALICE, deps=deps, limit=2)
    assert ([o.id for o in page], more) == ([objects[3].id, objects[2].id], True)
    assert page[0] == objects[3]
    rest, more = await list_(caller=ALICE, deps=deps, limit=2, starting_after=page[-1].id)
    assert ([o.id for o in rest], more) == ([objects[0].id], False)
    everything, more = await list_(caller=ALICE, deps=deps)
    assert ([o.id for o in everything], more) == ([objects[n].id for n in (3, 2, 0)], False)
    # Another tenant's object is no cursor here, and neither is an unknown id.
    for cursor in (objects[1].id, "nope"):
        with pytest.raises(InvalidRequest):
            await list_(caller=ALICE, deps=deps, starting_after=cursor)
    with pytest.raises(InvalidRequest):
        await list_(caller=ALICE, deps=deps, limit=101)
    bob = Caller(tenant_id="ten_b", client_id="cli_b")
    assert [o.id for o in (await list_(caller=bob, deps=deps))[0]] == [objects[1].id]
