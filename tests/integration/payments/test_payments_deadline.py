"""Saga steps that keep failing transiently are given up safely after their deadline,
over the real store with the fake ledger and risk and a fixed clock."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from paymesh.payments import service
from paymesh.payments.domain import (
    CaptureMethod,
    CapturePayment,
    CreateP2PTransfer,
    CreatePayment,
    CreatePayout,
    CreateRefund,
    P2PTransferStatus,
    PaymentStatus,
    PayoutStatus,
    RefundStatus,
    Step,
)
from paymesh.payments.saga import Deps, Resumer
from paymesh.platform.identity import Caller
from tests.fakes.clock import FixedClock
from tests.fakes.payments_ports import FakeLedger, FakeRisk

ALICE = Caller(tenant_id="ten_a", client_id="cli_a")
DEADLINE_S = 60.0
SETTLE_S = 5.0


@pytest.fixture
def timed(deps: Deps) -> Deps:
    """The fixture's deps with a one-minute step deadline, a 5 s settle time, Alice's accounts."""
    assert isinstance(deps.ledger, FakeLedger)
    deps.ledger.open("acct_payer", "USD", tenant_id="ten_a", balance=10_000)
    deps.ledger.open("acct_payee", "USD", tenant_id="ten_a")
    retry = dataclasses.replace(deps.retry, step_deadline_s=DEADLINE_S, settle_s=SETTLE_S)
    return dataclasses.replace(deps, retry=retry)


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


async def _resume_after(deps: Deps, seconds: float) -> None:
    _clock(deps).advance(seconds)
    await Resumer(deps, interval_s=1).run_once()


async def test_a_hold_applied_but_unanswered_is_voided_after_the_deadline_and_fails_with_timeout(
    timed: Deps, event_types: Any
) -> None:
    ledger = _ledger(timed)
    ledger.fail_next(1, after=True, then_down=True)
    p = await service.create_payment(_pay(), caller=ALICE, deps=timed)
    assert (p.status, p.step) == (PaymentStatus.PROCESSING, Step.HOLD)
    assert ledger.accounts["acct_payer"].debits_pending == 1_000  # the lost hold exists

    await _resume_after(timed, DEADLINE_S + 1)
    p = await service.get_payment("pay_1", caller=ALICE, deps=timed)
    assert (p.step, p.failure_code) == (Step.VOID, "timeout")
    holds_sent = ledger.calls.count("pay_1:hold")

    ledger.down = False
    await Resumer(timed, interval_s=1).run_once(everything=True)  # too early even so
    assert (await service.get_payment("pay_1", caller=ALICE, deps=timed)).step is Step.VOID
    assert "pay_1:void" not in ledger.calls

    await _resume_after(timed, SETTLE_S)
    p = await service.get_payment("pay_1", caller=ALICE, deps=timed)
    assert (p.status, p.step, p.failure_code) == (PaymentStatus.FAILED, None, "timeout")
    assert ledger.accounts["acct_payer"].debits_pending == 0
    assert (ledger.balance("acct_payer"), ledger.balance("acct_payee")) == (10_000, 0)
    assert ledger.calls.count("pay_1:hold") == holds_sent
    assert await event_types("pay_1") == ["payment.failed"]


async def test_the_compensating_void_keeps_retrying_after_the_deadline_until_the_ledger_returns(
    timed: Deps,
) -> None:
    ledger = _ledger(timed)
    # The accounts check passes; every ledger call after it fails (the ledger is down).
    ledger.fail_next(1, then_down=True)
    await service.create_payment(_pay(), caller=ALICE, deps=timed)
    await _resume_after(timed, DEADLINE_S + 1)
    for _ in range(5):
        await _resume_after(timed, 3_600)
        p = await service.get_payment("pay_1", caller=ALICE, deps=timed)
        assert (p.status, p.step) == (PaymentStatus.PROCESSING, Step.VOID)
    assert ledger.calls.count("pay_1:void") >= 5

    ledger.down = False
    await _resume_after(timed, 300)
    p = await service.get_payment("pay_1", caller=ALICE, deps=timed)
    assert (p.status, p.failure_code) == (PaymentStatus.FAILED, "timeout")
    assert ledger.accounts["acct_payer"].debits_pending == 0
    assert ledger.balance("acct_payer") == 10_000


async def test_a_capture_posted_but_unanswered_succeeds_after_the_deadline_instead_of_failing(
    timed: Deps, event_types: Any
) -> None:
    ledger = _ledger(timed)
    manual = _pay(capture_method=CaptureMethod.MANUAL, pid="pay_1")
    await service.create_payment(manual, caller=ALICE, deps=timed)
    ledger.fail_next(1, after=True, then_down=True)
    p = await service.capture_payment(CapturePayment("pay_1"), caller=ALICE, deps=timed)
    assert p.step is Step.CAPTURE

    await _resume_after(timed, DEADLINE_S + 1)
    assert (await service.get_payment("pay_1", caller=ALICE, deps=timed)).step is Step.LOOKUP
    captures_sent = ledger.calls.count("pay_1:capture")
    ledger.down = False
    await _resume_after(timed, SETTLE_S)

    p = await service.get_payment("pay_1", caller=ALICE, deps=timed)
    assert (p.status, p.amount_captured, p.step) == (PaymentStatus.SUCCEEDED, 1_000, None)
    assert (ledger.balance("acct_payer"), ledger.balance("acct_payee")) == (9_000, 1_000)
    assert ledger.accounts["acct_payer"].debits_pending == 0
    assert ledger.calls.count("pay_1:capture") == captures_sent
    assert "pay_1:capture" in ledger.lookups
    assert await event_types("pay_1") == ["payment.requires_capture", "payment.succeeded"]


async def test_a_capture_never_applied_releases_the_hold_and_fails_with_timeout(
    timed: Deps, event_types: Any
) -> None:
    ledger = _ledger(timed)
    await service.create_payment(
        _pay(capture_method=CaptureMethod.MANUAL), caller=ALICE, deps=timed
    )
    ledger.down = True
    await service.capture_payment(CapturePayment("pay_1"), caller=ALICE, deps=timed)
    await _resume_after(timed, DEADLINE_S + 1)
    ledger.down = False
    await _resume_after(timed, SETTLE_S)  # the lookup finds nothing: void next
    assert (await service.get_payment("pay_1", caller=ALICE, deps=timed)).step is Step.VOID
    await _resume_after(timed, SETTLE_S)

    p = await service.get_payment("pay_1", caller=ALICE, deps=timed)
    assert (p.status, p.failure_code, p.amount_captured) == (PaymentStatus.FAILED, "timeout", 0)
    assert ledger.accounts["acct_payer"].debits_pending == 0
    assert (ledger.balance("acct_payer"), ledger.balance("acct_payee")) == (10_000, 0)
    assert await event_types("pay_1") == ["payment.requires_capture", "payment.failed"]


async def test_risk_unavailable_past_the_deadline_fails_the_payment_with_timeout(
    timed: Deps, event_types: Any
) -> None:
    assert isinstance(timed.risk, FakeRisk)
    timed.risk.failures = 1_000
    p = await service.create_payment(_pay(), caller=ALICE, deps=timed)
    assert (p.status, p.step) == (PaymentStatus.PROCESSING, Step.RISK)
    await _resume_after(timed, 10)
    assert (await service.get_payment("pay_1", caller=ALICE, deps=timed)).step is Step.RISK

    await _resume_after(timed, DEADLINE_S)
    p = await service.get_payment("pay_1", caller=ALICE, deps=timed)
    assert (p.status, p.step, p.failure_code) == (PaymentStatus.FAILED, None, "timeout")
    assert _ledger(timed).calls == []
    assert await event_types("pay_1") == ["payment.failed"]


async def test_a_refund_applied_but_unanswered_is_found_after_the_deadline_and_counted_once(
    timed: Deps,
) -> None:
    ledger = _ledger(timed)
    await service.create_payment(_pay(), caller=ALICE, deps=timed)
    ledger.fail_next(1, after=True, then_down=True)
    r = await service.create_refund(CreateRefund("re_1", "pay_1"), caller=ALICE, deps=timed)
    assert (r.status, r.step) == (RefundStatus.PROCESSING, Step.TRANSFER)

    await _resume_after(timed, DEADLINE_S + 1)
    assert (
        await service.get_object("refund", "re_1", caller=ALICE, deps=timed)
    ).step is Step.LOOKUP
    sent = ledger.calls.count("re_1")
    ledger.down = False
    await _resume_after(timed, SETTLE_S)
    await _resume_after(timed, 3_600)

    r = await service.get_object("refund", "re_1", caller=ALICE, deps=timed)
    assert (r.status, r.step) == (RefundStatus.SUCCEEDED, None)
    p = await service.get_payment("pay_1", caller=ALICE, deps=timed)
    assert p.amount_refunded == 1_000
    assert (ledger.balance("acct_payer"), ledger.balance("acct_payee")) == (10_000, 0)
    assert ledger.calls.count("re_1") == sent


async def test_a_refund_never_applied_fails_with_timeout_and_frees_the_refundable_amount(
    timed: Deps,
) -> None:
    ledger = _ledger(timed)
    await service.create_payment(_pay(), caller=ALICE, deps=timed)
    ledger.down = True
    await service.create_refund(CreateRefund("re_1", "pay_1"), caller=ALICE, deps=timed)
    await _resume_after(timed, DEADLINE_S + 1)
    sent = ledger.calls.count("re_1")
    ledger.down = False
    await _resume_after(timed, SETTLE_S)

    r = await service.get_object("refund", "re_1", caller=ALICE, deps=timed)
    assert (r.status, r.failure_code) == (RefundStatus.FAILED, "timeout")
    assert ledger.calls.count("re_1") == sent
    again = await service.create_refund(CreateRefund("re_2", "pay_1"), caller=ALICE, deps=timed)
    assert (again.status, again.amount) == (RefundStatus.SUCCEEDED, 1_000)
    p = await service.get_payment("pay_1", caller=ALICE, deps=timed)
    assert p.amount_refunded == 1_000


async def test_a_p2p_transfer_applied_but_unanswered_is_found_after_the_deadline(
    timed: Deps,
) -> None:
    ledger = _ledger(timed)
    ledger.fail_next(1, after=True, then_down=True)
    cmd = CreateP2PTransfer("tr_1", "acct_payer", "acct_payee", 250, "USD")
    t = await service.create_transfer(cmd, caller=ALICE, deps=timed)
    assert t.step is Step.TRANSFER
    await _resume_after(timed, DEADLINE_S + 1)
    ledger.down = False
    await _resume_after(timed, SETTLE_S)

    t = await service.get_object("transfer", "tr_1", caller=ALICE, deps=timed)
    assert (t.status, t.step) == (P2PTransferStatus.SUCCEEDED, None)
    assert (ledger.balance("acct_payer"), ledger.balance("acct_payee")) == (9_750, 250)


async def test_a_payout_hold_unanswered_past_the_deadline_is_voided_and_fails_with_timeout(
    timed: Deps,
) -> None:
    ledger = _ledger(timed)
    # The accounts check passes; every ledger call after it fails (the ledger is down).
    ledger.fail_next(1, then_down=True)
    cmd = CreatePayout("po_1", "acct_payer", 400, "USD")
    po = await service.create_payout(cmd, caller=ALICE, deps=timed)
    assert po.step is Step.HOLD
    await _resume_after(timed, DEADLINE_S + 1)
    assert (await service.get_object("payout", "po_1", caller=ALICE, deps=timed)).step is Step.VOID
    holds_sent = ledger.calls.count("po_1:hold")
    ledger.down = False
    await _resume_after(timed, SETTLE_S)

    po = await service.get_object("payout", "po_1", caller=ALICE, deps=timed)
    assert (po.status, po.failure_code) == (PayoutStatus.FAILED, "timeout")
    assert ledger.calls.count("po_1:hold") == holds_sent
    assert ledger.accounts["acct_payer"].debits_pending == 0
    assert ledger.balance("acct_payer") == 10_000
