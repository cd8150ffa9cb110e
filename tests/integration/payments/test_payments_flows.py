"""Fees, compensation, expiry, top-ups and payouts through the bank, transfers and events,
over the real store with the fake ledger and risk and a seeded simulated bank."""

from __future__ import annotations

import dataclasses
import json
import random
from typing import Any

import pytest

from paymesh.payments import service
from paymesh.payments.bank import SimulatedBank
from paymesh.payments.domain import (
    CaptureMethod,
    CapturePayment,
    CreateP2PTransfer,
    CreatePayment,
    CreatePayout,
    CreateRefund,
    CreateTopup,
    P2PTransferStatus,
    PaymentStatus,
    PayoutStatus,
    RefundStatus,
    Step,
    TenantFees,
    TopupStatus,
)
from paymesh.payments.errors import AccountNotFound, Forbidden, InvalidRequest, NotFound
from paymesh.payments.saga import Deps, Resumer
from paymesh.platform.identity import Caller
from tests.fakes.clock import FixedClock
from tests.fakes.payments_ports import FakeLedger

ALICE = Caller(tenant_id="ten_a", client_id="cli_a")
MALLORY = Caller(tenant_id="ten_m", client_id="cli_m")
OPERATOR = Caller(tenant_id="ten_op", client_id="cli_op", scopes=frozenset({"admin"}))
REVENUE = "acct_revenue_ten_a_usd"
FUNDING = "acct_funding_ten_a_usd"


@pytest.fixture
def bank() -> SimulatedBank:
    return SimulatedBank(rng=random.Random(7))


@pytest.fixture
def flow(deps: Deps, bank: SimulatedBank) -> Deps:
    """The fixture's deps with a seeded bank, a one-minute authorisation and Alice's accounts."""
    assert isinstance(deps.ledger, FakeLedger)
    deps.ledger.open("acct_payer", "USD", tenant_id="ten_a", balance=10_000)
    deps.ledger.open("acct_payee", "USD", tenant_id="ten_a")
    return dataclasses.replace(deps, bank=bank, authorization_ttl_s=60)


def _ledger(deps: Deps) -> FakeLedger:
    assert isinstance(deps.ledger, FakeLedger)
    return deps.ledger


def _clock(deps: Deps) -> FixedClock:
    assert isinstance(deps.clock, FixedClock)
    return deps.clock


def _pay(pid: str = "pay_1", **changes: Any) -> CreatePayment:
    fields: dict[str, Any] = {
        "id": pid,
        "payer_account_id": "acct_payer",
        "payee_account_id": "acct_payee",
        "amount": 1_000,
        "currency": "USD",
        "capture_method": CaptureMethod.AUTOMATIC,
    }
    fields.update(changes)
    return CreatePayment(**fields)


async def _fees(deps: Deps, fixed: int = 30, basis_points: int = 290) -> None:
    await service.set_tenant_fees(
        TenantFees("ten_a", fixed, basis_points), caller=OPERATOR, deps=deps
    )


async def test_the_fee_is_posted_to_the_revenue_account_in_the_capture_batch(flow: Deps) -> None:
    await _fees(flow)
    p = await service.create_payment(_pay(), caller=ALICE, deps=flow)
    assert (p.status, p.amount_captured, p.fee) == (PaymentStatus.SUCCEEDED, 1_000, 59)
    ledger = _ledger(flow)
    assert (ledger.balance("acct_payee"), ledger.balance(REVENUE)) == (941, 59)
    revenue = ledger.accounts[REVENUE]
    assert (revenue.code, revenue.no_overdraft) == ("revenue", False)
    assert ledger.transfers["pay_1:capture"].transfer.linked
    assert ledger.transfers["pay_1:fee"].transfer.amount == 59


async def test_a_refused_fee_posts_no_capture_and_voids_the_hold(
    flow: Deps, event_types: Any
) -> None:
    await _fees(flow)
    ledger = _ledger(flow)
    ledger.refuse("pay_1:fee", "exceeds_credits")
    p = await service.create_payment(_pay(), caller=ALICE, deps=flow)
    assert (p.status, p.failure_code, p.fee, p.step) == (
        PaymentStatus.FAILED,
        "insufficient_funds",
        0,
        None,
    )
    assert "pay_1:capture" not in ledger.transfers
    assert ledger.transfers["pay_1:hold"].state == "voided"
    payer = ledger.accounts["acct_payer"]
    assert (payer.balance, payer.available, ledger.balance("acct_payee")) == (10_000, 10_000, 0)
    assert await event_types("pay_1") == ["payment.failed"]


async def test_a_refused_manual_capture_releases_the_hold(flow: Deps) -> None:
    ledger = _ledger(flow)
    await service.create_payment(_pay(capture_method=CaptureMethod.MANUAL), caller=ALICE, deps=flow)
    ledger.refuse("pay_1:capture", "pending_transfer_not_found")
    p = await service.capture_payment(CapturePayment("pay_1"), caller=ALICE, deps=flow)
    assert (p.status, p.failure_code) == (PaymentStatus.FAILED, "pending_transfer_not_found")
    assert ledger.accounts["acct_payer"].available == 10_000


async def test_a_refund_does_not_return_the_fee(flow: Deps) -> None:
    await _fees(flow, fixed=100, basis_points=0)
    ledger = _ledger(flow)
    ledger.accounts["acct_payee"].credits_posted += 500  # the merchant has other money
    await service.create_payment(_pay(), caller=ALICE, deps=flow)
    r = await service.create_refund(CreateRefund("re_1", "pay_1"), caller=ALICE, deps=flow)
    assert (r.status, r.amount) == (RefundStatus.SUCCEEDED, 1_000)
    assert (ledger.balance("acct_payer"), ledger.balance("acct_payee")) == (10_000, 400)
    assert ledger.balance(REVENUE) == 100


async def test_only_an_operator_sets_fees_and_a_tenant_reads_only_its_own(flow: Deps) -> None:
    with pytest.raises(Forbidden):
        await service.set_tenant_fees(TenantFees("ten_a", 0, 0), caller=ALICE, deps=flow)
    with pytest.raises(InvalidRequest):
        await service.set_tenant_fees(TenantFees("ten_a", 0, 10_001), caller=OPERATOR, deps=flow)
    await _fees(flow, 5, 10)
    own = await service.get_tenant_fees("", caller=ALICE, deps=flow)
    assert (own.fixed, own.basis_points) == (5, 10)
    with pytest.raises(NotFound):
        await service.get_tenant_fees("ten_a", caller=MALLORY, deps=flow)
    assert (await service.get_tenant_fees("ten_a", caller=OPERATOR, deps=flow)).fixed == 5


async def test_a_later_fee_change_does_not_reprice_an_authorised_payment(flow: Deps) -> None:
    await _fees(flow, fixed=10, basis_points=0)
    await service.create_payment(_pay(capture_method=CaptureMethod.MANUAL), caller=ALICE, deps=flow)
    await _fees(flow, fixed=500, basis_points=0)
    p = await service.capture_payment(CapturePayment("pay_1"), caller=ALICE, deps=flow)
    assert p.fee == 10


async def test_an_uncaptured_authorisation_expires_and_its_hold_is_voided(
    flow: Deps, event_types: Any
) -> None:
    await service.create_payment(_pay(capture_method=CaptureMethod.MANUAL), caller=ALICE, deps=flow)
    ledger = _ledger(flow)
    assert ledger.transfers["pay_1:hold"].transfer.timeout_seconds > 60
    resumer = Resumer(flow, interval_s=1)
    _clock(flow).advance(59)
    assert await resumer.run_once() == 0
    _clock(flow).advance(1)
    assert await resumer.run_once() == 1
    p = await service.get_payment("pay_1", caller=ALICE, deps=flow)
    assert (p.status, p.failure_code, p.step) == (
        PaymentStatus.CANCELED,
        "authorization_expired",
        None,
    )
    assert ledger.accounts["acct_payer"].available == 10_000
    assert await event_types("pay_1") == ["payment.requires_capture", "payment.canceled"]
    _clock(flow).advance(3_600)
    assert await resumer.run_once() == 0


async def test_a_hold_the_ledger_already_expired_still_cancels_the_payment(flow: Deps) -> None:
    await service.create_payment(_pay(capture_method=CaptureMethod.MANUAL), caller=ALICE, deps=flow)
    _ledger(flow).expire("pay_1:hold")
    _clock(flow).advance(61)
    await Resumer(flow, interval_s=1).run_once()
    p = await service.get_payment("pay_1", caller=ALICE, deps=flow)
    assert (p.status, p.failure_code) == (PaymentStatus.CANCELED, "authorization_expired")


async def test_a_topup_pulls_from_the_bank_then_credits_the_account(
    flow: Deps, bank: SimulatedBank, event_types: Any
) -> None:
    t = await service.create_topup(
        CreateTopup("tu_1", "acct_payee", 2_500, "USD"), caller=ALICE, deps=flow
    )
    assert t.status is TopupStatus.SUCCEEDED
    assert bank.moved("pull", "acct_payee") == 2_500
    ledger = _ledger(flow)
    assert (ledger.balance("acct_payee"), ledger.balance(FUNDING)) == (2_500, -2_500)
    assert await event_types("tu_1") == ["topup.succeeded"]


async def test_a_bank_timeout_is_resolved_by_status_with_exactly_one_credit(
    flow: Deps, bank: SimulatedBank, event_types: Any
) -> None:
    bank.force("timeout")
    t = await service.create_topup(
        CreateTopup("tu_1", "acct_payee", 2_500, "USD"), caller=ALICE, deps=flow
    )
    assert (t.status, t.step) == (TopupStatus.PROCESSING, Step.BANK_STATUS)
    ledger = _ledger(flow)
    assert ledger.balance("acct_payee") == 0  # never guessed
    resumer = Resumer(flow, interval_s=1)
    assert await resumer.run_once() == 0  # backing off before asking the bank
    _clock(flow).advance(5)
    assert await resumer.run_once() == 1
    t = await service.get_object("topup", "tu_1", caller=ALICE, deps=flow)
    assert t.status is TopupStatus.SUCCEEDED
    assert bank.calls == [("pull", "tu_1"), ("status", "tu_1")]
    assert ledger.calls.count("tu_1:credit") == 1
    assert ledger.balance("acct_payee") == 2_500
    assert await event_types("tu_1") == ["topup.succeeded"]


async def test_a_pull_the_bank_declines_fails_the_topup_without_credit(
    flow: Deps, bank: SimulatedBank
) -> None:
    bank.force("failed")
    t = await service.create_topup(
        CreateTopup("tu_1", "acct_payee", 2_500, "USD"), caller=ALICE, deps=flow
    )
    assert (t.status, t.failure_code) == (TopupStatus.FAILED, "bank_declined")
    assert "tu_1:credit" not in _ledger(flow).calls


async def test_a_topup_of_an_unknown_account_never_reaches_the_bank(
    flow: Deps, bank: SimulatedBank
) -> None:
    with pytest.raises(AccountNotFound):
        await service.create_topup(
            CreateTopup("tu_1", "acct_nobody", 100, "USD"), caller=ALICE, deps=flow
        )
    assert bank.calls == []


async def test_a_payout_moves_the_money_out_through_the_bank(
    flow: Deps, bank: SimulatedBank, event_types: Any
) -> None:
    p = await service.create_payout(
        CreatePayout("po_1", "acct_payer", 4_000, "USD"), caller=ALICE, deps=flow
    )
    assert p.status is PayoutStatus.SUCCEEDED
    ledger = _ledger(flow)
    payer = ledger.accounts["acct_payer"]
    assert (payer.balance, payer.debits_pending, ledger.balance(FUNDING)) == (6_000, 0, 4_000)
    assert bank.moved("push", "acct_payer") == 4_000
    assert await event_types("po_1") == ["payout.succeeded"]
    assert (
        await service.create_payout(
            CreatePayout("po_1", "acct_payer", 4_000, "USD"), caller=ALICE, deps=flow
        )
        == p
    )
    with pytest.raises(NotFound):
        await service.get_object("payout", "po_1", caller=MALLORY, deps=flow)


async def test_a_payout_the_bank_refuses_voids_the_hold_and_restores_the_balance(
    flow: Deps, bank: SimulatedBank, event_types: Any
) -> None:
    bank.force("failed")
    p = await service.create_payout(
        CreatePayout("po_1", "acct_payer", 4_000, "USD"), caller=ALICE, deps=flow
    )
    assert (p.status, p.failure_code) == (PayoutStatus.FAILED, "bank_declined")
    ledger = _ledger(flow)
    assert ledger.transfers["po_1:hold"].state == "voided"
    payer = ledger.accounts["acct_payer"]
    assert (payer.balance, payer.available) == (10_000, 10_000)
    assert await event_types("po_1") == ["payout.failed"]


async def test_a_payout_beyond_the_balance_fails_at_once_without_the_bank(
    flow: Deps, bank: SimulatedBank
) -> None:
    p = await service.create_payout(
        CreatePayout("po_1", "acct_payer", 10_001, "USD"), caller=ALICE, deps=flow
    )
    assert (p.status, p.failure_code) == (PayoutStatus.FAILED, "insufficient_funds")
    assert bank.calls == []


async def test_a_payout_whose_bank_answer_is_lost_waits_then_posts_once(
    flow: Deps, bank: SimulatedBank
) -> None:
    bank.force("timeout")
    p = await service.create_payout(
        CreatePayout("po_1", "acct_payer", 1_000, "USD"), caller=ALICE, deps=flow
    )
    assert (p.status, p.step) == (PayoutStatus.PROCESSING, Step.BANK_STATUS)
    assert _ledger(flow).accounts["acct_payer"].available == 9_000  # still held
    _clock(flow).advance(5)
    await Resumer(flow, interval_s=1).run_once()
    p = await service.get_object("payout", "po_1", caller=ALICE, deps=flow)
    assert p.status is PayoutStatus.SUCCEEDED
    assert bank.calls.count(("push", "po_1")) == 1
    assert _ledger(flow).balance("acct_payer") == 9_000


async def test_many_bank_requests_with_random_failures_and_timeouts_all_settle_truthfully(
    flow: Deps,
) -> None:
    bank = SimulatedBank(failure_rate=0.3, timeout_rate=0.3, rng=random.Random(42))
    deps = dataclasses.replace(flow, bank=bank)
    for n in range(20):
        await service.create_topup(
            CreateTopup(f"tu_{n}", "acct_payee", 100, "USD"), caller=ALICE, deps=deps
        )
    _clock(deps).advance(10)
    await Resumer(deps, interval_s=1).run_once()
    tops = [
        await service.get_object("topup", f"tu_{n}", caller=ALICE, deps=deps) for n in range(20)
    ]
    assert all(t.step is None for t in tops)
    succeeded = sum(t.status is TopupStatus.SUCCEEDED for t in tops)
    assert 0 < succeeded < 20
    assert _ledger(deps).balance("acct_payee") == bank.moved("pull", "acct_payee")
    assert _ledger(deps).balance("acct_payee") == 100 * succeeded


async def test_a_transfer_moves_money_between_two_accounts(flow: Deps, event_types: Any) -> None:
    t = await service.create_transfer(
        CreateP2PTransfer("tr_1", "acct_payer", "acct_payee", 700, "USD"), caller=ALICE, deps=flow
    )
    assert t.status is P2PTransferStatus.SUCCEEDED
    ledger = _ledger(flow)
    assert (ledger.balance("acct_payer"), ledger.balance("acct_payee")) == (9_300, 700)
    assert ledger.calls == ["tr_1:move"]
    assert await event_types("tr_1") == ["transfer.succeeded"]
    with pytest.raises(NotFound):
        await service.get_object("transfer", "tr_1", caller=MALLORY, deps=flow)


async def test_a_transfer_beyond_the_balance_fails_with_insufficient_funds(
    flow: Deps, event_types: Any
) -> None:
    t = await service.create_transfer(
        CreateP2PTransfer("tr_1", "acct_payee", "acct_payer", 1, "USD"), caller=ALICE, deps=flow
    )
    assert (t.status, t.failure_code) == (P2PTransferStatus.FAILED, "insufficient_funds")
    assert await event_types("tr_1") == ["transfer.failed"]


async def test_events_are_the_tenants_own_newest_first_page_by_page(flow: Deps) -> None:
    _ledger(flow).open("acct_m", "USD", tenant_id="ten_m", balance=100)
    _ledger(flow).open("acct_m2", "USD", tenant_id="ten_m")
    for n in range(3):
        await service.create_transfer(
            CreateP2PTransfer(f"tr_{n}", "acct_payer", "acct_payee", 1, "USD"),
            caller=ALICE,
            deps=flow,
        )
    await service.create_transfer(
        CreateP2PTransfer("tr_m", "acct_m", "acct_m2", 1, "USD"), caller=MALLORY, deps=flow
    )
    page, more = await service.list_events(caller=ALICE, deps=flow, limit=2)
    assert ([e.subject for e in page], more) == (["tr_2", "tr_1"], True)
    rest, more = await service.list_events(
        caller=ALICE, deps=flow, limit=2, starting_after=page[-1].id
    )
    assert ([e.subject for e in rest], more) == (["tr_0"], False)
    envelope = json.loads(page[0].json)
    assert (envelope["type"], envelope["tenant"], envelope["data"]["object"]) == (
        "transfer.succeeded",
        "ten_a",
        "transfer",
    )
    assert (await service.get_event(page[0].id, caller=ALICE, deps=flow)).id == page[0].id
    with pytest.raises(NotFound):
        await service.get_event(page[0].id, caller=MALLORY, deps=flow)
    mine, _ = await service.list_events(caller=MALLORY, deps=flow)
    assert [e.subject for e in mine] == ["tr_m"]
    with pytest.raises(InvalidRequest):
        await service.list_events(caller=MALLORY, deps=flow, starting_after=page[0].id)
