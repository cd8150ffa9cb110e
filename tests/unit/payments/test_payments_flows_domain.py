"""Fees, authorisation expiry, and the top-up, payout and transfer state machines, pure."""

from __future__ import annotations

import dataclasses

import pytest

from paymesh.payments import domain
from paymesh.payments.domain import (
    BankOutcome,
    BankResult,
    CaptureMethod,
    CreateP2PTransfer,
    CreatePayment,
    CreatePayout,
    CreateTopup,
    P2PTransferStatus,
    PaymentStatus,
    PayoutStatus,
    RiskAssessment,
    Step,
    TenantFees,
    TopupStatus,
    TransferKind,
)
from paymesh.payments.errors import InvalidRequest, InvalidState, PaymentBusy

NOW = 1_700_000_000_000_000
DAY_US = 86_400 * 1_000_000


def test_the_fee_is_fixed_plus_floored_basis_points() -> None:
    assert domain.capture_fee(10_000, fixed=30, basis_points=290) == 30 + 290
    assert domain.capture_fee(999, fixed=0, basis_points=100) == 9  # 9.99 floors to 9
    assert domain.capture_fee(1, fixed=0, basis_points=9_999) == 0
    assert domain.capture_fee(10_000, fixed=0, basis_points=0) == 0


def test_the_fee_never_exceeds_the_captured_amount() -> None:
    assert domain.capture_fee(20, fixed=30, basis_points=0) == 20
    assert domain.capture_fee(100, fixed=1, basis_points=10_000) == 100
    assert domain.capture_fee(0, fixed=30, basis_points=290) == 0


def test_a_fee_schedule_out_of_bounds_is_refused() -> None:
    domain.validate_fees(TenantFees("ten_a", 0, 10_000))
    for bad in (TenantFees("ten_a", -1, 0), TenantFees("ten_a", 0, 10_001), TenantFees("", 1, 1)):
        with pytest.raises(InvalidRequest):
            domain.validate_fees(bad)


def _manual(ttl_s: int = 60, fees: TenantFees = domain.NO_FEES) -> domain.Payment:
    cmd = CreatePayment("pay_1", "acct_payer", "acct_payee", 10_000, "USD", CaptureMethod.MANUAL)
    p = domain.new_payment(cmd, "ten_a", NOW, fees=fees, authorization_ttl_us=ttl_s * 1_000_000)
    p, _ = domain.apply_risk(p, RiskAssessment("approve"), NOW)
    return p


def test_the_hold_expires_in_the_ledger_a_while_after_the_authorisation() -> None:
    p = _manual(ttl_s=7 * 86_400)
    [hold] = domain.step_transfers(p)
    assert p.expires_at_us == NOW + 7 * DAY_US
    assert hold.timeout_seconds > 7 * 86_400
    assert domain.hold_timeout_s(_manual(ttl_s=5)) == 65


def test_a_capture_with_a_fee_is_one_linked_batch_with_the_fee_transfer() -> None:
    p, _ = domain.complete_step(_manual(fees=TenantFees("ten_a", 30, 290)), NOW)
    p = domain.begin_capture(p, None, NOW)
    capture, fee = domain.step_transfers(p)
    assert (capture.kind, capture.linked, capture.pending_id) == (
        TransferKind.POST_PENDING,
        True,
        "pay_1:hold",
    )
    assert (fee.id, fee.debit_account_id, fee.credit_account_id, fee.amount, fee.linked) == (
        "pay_1:fee",
        "acct_payee",
        "acct_revenue_ten_a_usd",
        320,
        False,
    )
    done, events = domain.complete_step(p, NOW)
    assert (done.status, done.fee, events) == (PaymentStatus.SUCCEEDED, 320, ("payment.succeeded",))


def test_a_capture_without_fees_is_a_lone_post() -> None:
    p, _ = domain.complete_step(_manual(), NOW)
    [capture] = domain.step_transfers(domain.begin_capture(p, 400, NOW))
    assert (capture.amount, capture.linked) == (400, False)


def test_a_refused_capture_voids_the_hold_and_then_fails() -> None:
    p, _ = domain.complete_step(_manual(), NOW)
    p = domain.begin_capture(p, None, NOW)
    voiding, events = domain.fail_step(p, "exceeds_credits", "no", NOW)
    assert (voiding.step, voiding.status, events) == (
        Step.VOID,
        PaymentStatus.REQUIRES_CAPTURE,
        (),
    )
    failed, events = domain.complete_step(voiding, NOW)
    assert (failed.status, failed.failure_code, events) == (
        PaymentStatus.FAILED,
        "exceeds_credits",
        ("payment.failed",),
    )


def test_a_linked_batch_answers_its_first_real_refusal() -> None:
    assert domain.batch_result(["ok", "exists"]) == "ok"
    assert domain.batch_result(["exists", "exists"]) == "exists"
    assert domain.batch_result(["linked_event_failed", "exceeds_credits"]) == "exceeds_credits"


def test_an_expired_authorisation_is_canceled_with_authorization_expired() -> None:
    p, _ = domain.complete_step(_manual(ttl_s=60), NOW)
    with pytest.raises(InvalidState, match="not expired"):
        domain.begin_expiry(p, NOW + 59 * 1_000_000)
    expiring = domain.begin_expiry(p, NOW + 60 * 1_000_000)
    assert (expiring.step, expiring.failure_code) == (Step.VOID, "authorization_expired")
    with pytest.raises(PaymentBusy):
        domain.begin_capture(expiring, None, NOW)
    canceled, events = domain.complete_step(expiring, NOW)
    assert (canceled.status, canceled.failure_code, events) == (
        PaymentStatus.CANCELED,
        "authorization_expired",
        ("payment.canceled",),
    )


def test_a_captured_payment_does_not_expire() -> None:
    p, _ = domain.complete_step(_manual(ttl_s=60), NOW)
    done, _ = domain.complete_step(domain.begin_capture(p, None, NOW), NOW)
    with pytest.raises(InvalidState):
        domain.begin_expiry(done, NOW + DAY_US)


def test_a_topup_pulls_then_credits_and_waits_when_the_bank_answer_is_lost() -> None:
    t = domain.new_topup(CreateTopup("tu_1", "acct_1", 500, "USD"), "ten_a", NOW)
    assert t.step is Step.BANK
    waiting, events = domain.apply_topup_bank(t, BankResult(BankOutcome.UNKNOWN), NOW)
    assert (waiting.step, waiting.status, events) == (Step.BANK_STATUS, TopupStatus.PROCESSING, ())
    crediting, _ = domain.apply_topup_bank(waiting, BankResult(BankOutcome.SUCCEEDED), NOW)
    assert crediting.step is Step.TRANSFER
    assert domain.topup_transfer(crediting).id == "tu_1:credit"
    done, events = domain.settle_topup(crediting, "ok", NOW)
    assert (done.status, events) == (TopupStatus.SUCCEEDED, ("topup.succeeded",))


def test_a_topup_the_bank_declines_fails_with_its_code() -> None:
    t = domain.new_topup(CreateTopup("tu_1", "acct_1", 500, "USD"), "ten_a", NOW)
    failed, events = domain.apply_topup_bank(
        t, BankResult(BankOutcome.FAILED, "bank_declined"), NOW
    )
    assert (failed.status, failed.failure_code, events) == (
        TopupStatus.FAILED,
        "bank_declined",
        ("topup.failed",),
    )


def test_a_payout_holds_pushes_and_posts() -> None:
    p = domain.new_payout(CreatePayout("po_1", "acct_1", 700, "USD"), "ten_a", NOW)
    hold = domain.payout_transfer(p)
    assert (hold.id, hold.kind, hold.credit_account_id, hold.timeout_seconds) == (
        "po_1:hold",
        TransferKind.PENDING,
        "acct_funding_ten_a_usd",
        0,
    )
    p, _ = domain.apply_payout_ledger(p, "ok", NOW)
    assert p.step is Step.BANK
    p, _ = domain.apply_payout_bank(p, BankResult(BankOutcome.SUCCEEDED), NOW)
    post = domain.payout_transfer(p)
    assert (post.id, post.kind, post.pending_id) == (
        "po_1:post",
        TransferKind.POST_PENDING,
        "po_1:hold",
    )
    done, events = domain.apply_payout_ledger(p, "ok", NOW)
    assert (done.status, done.step, events) == (PayoutStatus.SUCCEEDED, None, ("payout.succeeded",))


def test_a_payout_the_bank_refuses_voids_its_hold_and_fails_with_the_banks_code() -> None:
    p = domain.new_payout(CreatePayout("po_1", "acct_1", 700, "USD"), "ten_a", NOW)
    p, _ = domain.apply_payout_ledger(p, "ok", NOW)
    p, events = domain.apply_payout_bank(p, BankResult(BankOutcome.FAILED, "account_closed"), NOW)
    assert (p.step, p.status, events) == (Step.VOID, PayoutStatus.PROCESSING, ())
    assert domain.payout_transfer(p).kind is TransferKind.VOID_PENDING
    failed, events = domain.apply_payout_ledger(p, "ok", NOW)
    assert (failed.status, failed.failure_code, events) == (
        PayoutStatus.FAILED,
        "account_closed",
        ("payout.failed",),
    )


def test_a_payout_without_enough_money_fails_at_once() -> None:
    p = domain.new_payout(CreatePayout("po_1", "acct_1", 700, "USD"), "ten_a", NOW)
    failed, events = domain.apply_payout_ledger(p, "exceeds_credits", NOW)
    assert (failed.status, failed.failure_code, events) == (
        PayoutStatus.FAILED,
        "insufficient_funds",
        ("payout.failed",),
    )


def test_a_transfer_moves_once_and_fails_with_a_code() -> None:
    cmd = CreateP2PTransfer("tr_1", "acct_a", "acct_b", 300, "USD")
    t = domain.new_p2p_transfer(cmd, "ten_a", NOW)
    move = domain.move_transfer(t)
    assert (move.id, move.kind, move.debit_account_id) == (
        "tr_1:move",
        TransferKind.SINGLE,
        "acct_a",
    )
    done, events = domain.settle_p2p_transfer(t, "exists", NOW)
    assert (done.status, events) == (P2PTransferStatus.SUCCEEDED, ("transfer.succeeded",))
    failed, events = domain.settle_p2p_transfer(t, "exceeds_credits", NOW)
    assert (failed.failure_code, events) == ("insufficient_funds", ("transfer.failed",))
    with pytest.raises(InvalidRequest):
        domain.new_p2p_transfer(dataclasses.replace(cmd, to_account_id="acct_a"), "ten_a", NOW)
