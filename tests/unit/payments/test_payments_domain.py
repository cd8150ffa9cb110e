"""The payment, refund and top-up state machines, without I/O."""

from __future__ import annotations

import dataclasses

import pytest

from paymesh.payments import domain
from paymesh.payments.domain import (
    CaptureMethod,
    CreatePayment,
    CreateRefund,
    CreateTopup,
    Payment,
    PaymentStatus,
    RefundStatus,
    RiskAssessment,
    Step,
    TopupStatus,
    TransferKind,
)
from paymesh.payments.errors import (
    AmountExceedsAuthorized,
    AmountExceedsRefundable,
    InvalidRequest,
    InvalidState,
    PaymentBusy,
)
from paymesh.platform.money import MAX_AMOUNT

NOW = 1_700_000_000_000_000
APPROVE = RiskAssessment("approve", 5, (), "v1")


def _cmd(**changes: object) -> CreatePayment:
    cmd = CreatePayment(
        id="pay_1",
        payer_account_id="acct_payer",
        payee_account_id="acct_payee",
        amount=1_000,
        currency="USD",
        capture_method=CaptureMethod.MANUAL,
    )
    return dataclasses.replace(cmd, **changes)  # type: ignore[arg-type]


def _authorised(amount: int = 1_000) -> Payment:
    p = domain.new_payment(_cmd(amount=amount), "ten_1", NOW)
    p, _ = domain.apply_risk(p, APPROVE, NOW)
    p, _ = domain.complete_step(p, NOW)
    return p


def _captured(amount: int | None = None) -> Payment:
    p = domain.begin_capture(_authorised(), amount, NOW)
    p, _ = domain.complete_step(p, NOW)
    return p


@pytest.mark.parametrize(
    "changes",
    [
        {"amount": 0},
        {"amount": -5},
        {"amount": MAX_AMOUNT + 1},
        {"currency": "XXX"},
        {"currency": "usd"},
        {"payee_account_id": "acct_payer"},
        {"capture_method": None},
        {"id": ""},
        {"id": "has space"},
    ],
)
def test_an_invalid_payment_is_refused(changes: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest):
        domain.new_payment(_cmd(**changes), "ten_1", NOW)


def test_a_new_payment_is_processing_and_asks_risk_first() -> None:
    p = domain.new_payment(_cmd(), "ten_1", NOW)
    assert (p.status, p.step, p.tenant_id) == (PaymentStatus.PROCESSING, Step.RISK, "ten_1")


def test_a_retried_create_matches_only_the_same_fields_and_tenant() -> None:
    p = domain.new_payment(_cmd(), "ten_1", NOW)
    assert domain.same_payment_request(p, _cmd(), "ten_1")
    assert not domain.same_payment_request(p, _cmd(amount=999), "ten_1")
    assert not domain.same_payment_request(p, _cmd(), "ten_2")


def test_a_risk_decline_fails_the_payment_before_money_moves() -> None:
    p = domain.new_payment(_cmd(), "ten_1", NOW)
    failed, events = domain.apply_risk(p, RiskAssessment("decline", 99, ("blocked",), "v1"), NOW)
    assert failed.status is PaymentStatus.FAILED
    assert failed.failure_code == "risk_declined"
    assert failed.step is None
    assert failed.risk is not None
    assert failed.risk.reasons == ("blocked",)
    assert events == ("payment.failed",)


def test_an_approved_payment_holds_the_amount_as_a_pending_transfer() -> None:
    p = domain.new_payment(_cmd(), "ten_1", NOW)
    held, events = domain.apply_risk(p, APPROVE, NOW)
    transfer = domain.step_transfer(held)
    assert events == ()
    assert (transfer.id, transfer.kind, transfer.code) == (
        "pay_1:hold",
        TransferKind.PENDING,
        "payment",
    )
    assert (transfer.debit_account_id, transfer.credit_account_id) == ("acct_payer", "acct_payee")


def test_a_manual_payment_requires_capture_once_held() -> None:
    p = domain.new_payment(_cmd(), "ten_1", NOW)
    p, _ = domain.apply_risk(p, APPROVE, NOW)
    held, events = domain.complete_step(p, NOW)
    assert held.status is PaymentStatus.REQUIRES_CAPTURE
    assert held.step is None
    assert events == ("payment.requires_capture",)


def test_an_automatic_payment_captures_the_full_amount_after_the_hold() -> None:
    p = domain.new_payment(_cmd(capture_method=CaptureMethod.AUTOMATIC), "ten_1", NOW)
    p, _ = domain.apply_risk(p, APPROVE, NOW)
    p, events = domain.complete_step(p, NOW)
    assert (p.step, p.step_amount, events) == (Step.CAPTURE, 1_000, ())
    transfer = domain.step_transfer(p)
    assert (transfer.id, transfer.kind, transfer.pending_id) == (
        "pay_1:capture",
        TransferKind.POST_PENDING,
        "pay_1:hold",
    )
    done, events = domain.complete_step(p, NOW)
    assert (done.status, done.amount_captured, events) == (
        PaymentStatus.SUCCEEDED,
        1_000,
        ("payment.succeeded",),
    )


def test_a_payment_risk_sends_to_review_waits_in_review_after_the_hold() -> None:
    p = domain.new_payment(_cmd(capture_method=CaptureMethod.AUTOMATIC), "ten_1", NOW)
    p, _ = domain.apply_risk(p, RiskAssessment("review", 60, ("new_device",), "v1"), NOW)
    assert p.step is Step.HOLD
    p, events = domain.complete_step(p, NOW)
    assert (p.status, p.step, events) == (PaymentStatus.IN_REVIEW, None, ("payment.in_review",))


def test_a_partial_capture_captures_only_that_amount() -> None:
    p = _captured(400)
    assert (p.status, p.amount_captured) == (PaymentStatus.SUCCEEDED, 400)


def test_capture_more_than_authorised_is_rejected() -> None:
    with pytest.raises(AmountExceedsAuthorized):
        domain.begin_capture(_authorised(1_000), 1_001, NOW)


def test_a_second_capture_is_refused_as_already_captured() -> None:
    with pytest.raises(InvalidState, match="already captured"):
        domain.begin_capture(_captured(), None, NOW)


def test_capture_while_another_step_runs_is_busy() -> None:
    capturing = domain.begin_capture(_authorised(), None, NOW)
    with pytest.raises(PaymentBusy):
        domain.begin_capture(capturing, None, NOW)
    with pytest.raises(PaymentBusy):
        domain.begin_cancel(capturing, NOW)


def test_capture_of_a_payment_still_processing_is_an_invalid_state() -> None:
    with pytest.raises(InvalidState):
        domain.begin_capture(domain.new_payment(_cmd(), "ten_1", NOW), None, NOW)


def test_cancel_voids_the_hold_and_ends_canceled() -> None:
    p = domain.begin_cancel(_authorised(), NOW)
    transfer = domain.step_transfer(p)
    assert (transfer.id, transfer.kind, transfer.code) == (
        "pay_1:void",
        TransferKind.VOID_PENDING,
        "cancel",
    )
    canceled, events = domain.complete_step(p, NOW)
    assert (canceled.status, events) == (PaymentStatus.CANCELED, ("payment.canceled",))


def test_cancel_after_capture_is_refused() -> None:
    with pytest.raises(InvalidState):
        domain.begin_cancel(_captured(), NOW)


def test_a_void_of_an_expired_hold_still_settles_the_cancel() -> None:
    assert domain.step_settled(Step.VOID, "pending_transfer_expired")
    assert not domain.step_settled(Step.CAPTURE, "pending_transfer_expired")


@pytest.mark.parametrize(
    ("result", "code"),
    [
        ("exceeds_credits", "insufficient_funds"),
        ("debit_account_not_found", "account_not_found"),
        ("credit_account_not_found", "account_not_found"),
        ("currency_mismatch", "currency_mismatch"),
        ("tenant_mismatch", "tenant_mismatch"),
    ],
)
def test_a_refused_hold_fails_the_payment_with_a_stable_code(result: str, code: str) -> None:
    p = domain.new_payment(_cmd(), "ten_1", NOW)
    p, _ = domain.apply_risk(p, APPROVE, NOW)
    failed, events = domain.fail_step(p, domain.failure_code(result), result, NOW)
    assert (failed.status, failed.failure_code, events) == (
        PaymentStatus.FAILED,
        code,
        ("payment.failed",),
    )


def test_a_refund_of_zero_refunds_everything_left() -> None:
    refund = domain.new_refund(CreateRefund("re_1", "pay_1"), _captured(), 300, NOW)
    assert (refund.amount, refund.status, refund.step) == (
        700,
        RefundStatus.PROCESSING,
        Step.TRANSFER,
    )
    transfer = domain.refund_transfer(refund)
    assert (transfer.id, transfer.debit_account_id, transfer.credit_account_id) == (
        "re_1",
        "acct_payee",
        "acct_payer",
    )


def test_refund_more_than_captured_is_rejected() -> None:
    with pytest.raises(AmountExceedsRefundable):
        domain.new_refund(CreateRefund("re_1", "pay_1", 401), _captured(400), 0, NOW)


def test_refund_beyond_what_earlier_refunds_left_is_rejected() -> None:
    with pytest.raises(AmountExceedsRefundable):
        domain.new_refund(CreateRefund("re_2", "pay_1", 1), _captured(), 1_000, NOW)


def test_refund_of_an_uncaptured_payment_is_an_invalid_state() -> None:
    with pytest.raises(InvalidState):
        domain.new_refund(CreateRefund("re_1", "pay_1", 100), _authorised(), 0, NOW)


def test_a_refund_the_payee_cannot_cover_fails_with_insufficient_funds() -> None:
    refund = domain.new_refund(CreateRefund("re_1", "pay_1", 100), _captured(), 0, NOW)
    failed, events = domain.settle_refund(refund, "exceeds_credits", NOW)
    assert (failed.status, failed.failure_code, events) == (
        RefundStatus.FAILED,
        "insufficient_funds",
        ("refund.failed",),
    )


def test_a_topup_credits_the_account_from_the_tenants_funding_account() -> None:
    topup = domain.new_topup(CreateTopup("tu_1", "acct_1", 5_000, "EUR"), "ten_1", NOW)
    transfer = domain.topup_transfer(topup)
    assert (transfer.id, transfer.debit_account_id, transfer.code) == (
        "tu_1:credit",
        "acct_funding_ten_1_eur",
        "topup",
    )
    done, events = domain.settle_topup(topup, "exists", NOW)
    assert (done.status, events) == (TopupStatus.SUCCEEDED, ("topup.succeeded",))


def test_resume_backoff_grows_exponentially_up_to_a_ceiling() -> None:
    delays = [domain.retry_delay_s(n, 1.0, 10.0) for n in range(1, 7)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
