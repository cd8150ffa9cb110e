"""A saga step's deadline and what giving up each step decides, without I/O."""

from __future__ import annotations

import dataclasses

import pytest

from paymesh.payments import domain
from paymesh.payments.domain import (
    CaptureMethod,
    CreatePayment,
    CreatePayout,
    CreateRefund,
    Payment,
    PaymentStatus,
    PayoutStatus,
    RefundStatus,
    RiskAssessment,
    Step,
    Transfer,
)

NOW = 1_700_000_000_000_000
MINUTE_US = 60_000_000


def _payment(step: Step | None, **changes: object) -> Payment:
    cmd = CreatePayment(
        id="pay_1",
        payer_account_id="acct_payer",
        payee_account_id="acct_payee",
        amount=1_000,
        currency="USD",
        capture_method=CaptureMethod.AUTOMATIC,
    )
    p = domain.new_payment(cmd, "ten_a", NOW)
    risk = RiskAssessment("approve", 5, (), "v1")
    fields: dict[str, object] = {"step": step, "risk": risk, "step_started_at_us": NOW}
    fields.update(changes)
    return dataclasses.replace(p, **fields)  # type: ignore[arg-type]


def test_a_step_is_not_past_its_deadline_just_before_it() -> None:
    p = _payment(Step.HOLD)
    assert not domain.step_deadline_passed(p, NOW + 15 * MINUTE_US - 1, 15 * 60)


def test_a_step_is_past_its_deadline_from_the_instant_it_was_first_recorded() -> None:
    p = _payment(Step.HOLD, updated_at_us=NOW + 10 * MINUTE_US)
    assert domain.step_deadline_passed(p, NOW + 15 * MINUTE_US, 15 * 60)


def test_a_row_without_a_recorded_start_counts_from_its_last_update() -> None:
    p = _payment(Step.HOLD, step_started_at_us=0, updated_at_us=NOW + MINUTE_US)
    assert not domain.step_deadline_passed(p, NOW + 15 * MINUTE_US, 15 * 60)
    assert domain.step_deadline_passed(p, NOW + 16 * MINUTE_US, 15 * 60)


def test_no_step_in_progress_has_no_deadline() -> None:
    p = _payment(None)
    assert not domain.step_deadline_passed(p, NOW + 10**12, 1)


def test_giving_up_risk_fails_the_payment_with_timeout_at_once() -> None:
    failed, events = domain.give_up_step(_payment(Step.RISK), NOW)
    assert (failed.status, failed.step, failed.failure_code) == (
        PaymentStatus.FAILED,
        None,
        "timeout",
    )
    assert events == ("payment.failed",)


def test_giving_up_the_hold_voids_it_before_failing() -> None:
    voiding, events = domain.give_up_step(_payment(Step.HOLD), NOW)
    assert (voiding.status, voiding.step, voiding.failure_code) == (
        PaymentStatus.PROCESSING,
        Step.VOID,
        "timeout",
    )
    assert events == ()
    assert domain.step_transfer(voiding).pending_id == "pay_1:hold"


def test_a_void_of_a_given_up_hold_that_finds_no_hold_counts_as_done_and_fails_the_payment() -> (
    None
):
    voiding, _ = domain.give_up_step(_payment(Step.HOLD), NOW)
    assert domain.void_settled(voiding, "pending_transfer_not_found")
    assert domain.void_settled(voiding, "pending_transfer_already_voided")
    assert domain.void_settled(voiding, "pending_transfer_expired")
    failed, events = domain.complete_step(voiding, NOW)
    assert (failed.status, failed.failure_code, events) == (
        PaymentStatus.FAILED,
        "timeout",
        ("payment.failed",),
    )


def test_a_plain_cancel_does_not_take_a_missing_hold_for_released() -> None:
    canceling = _payment(Step.VOID, status=PaymentStatus.REQUIRES_CAPTURE)
    assert not domain.void_settled(canceling, "pending_transfer_not_found")


def test_giving_up_a_capture_asks_the_ledger_and_never_sends_it_again() -> None:
    looking, events = domain.give_up_step(_payment(Step.CAPTURE, step_amount=600), NOW)
    assert (looking.step, looking.step_amount, events) == (Step.LOOKUP, 600, ())
    assert domain.lookup_ids(looking) == ["pay_1:capture", "pay_1:fee"]


def test_a_capture_found_posted_after_its_deadline_succeeds_with_the_posted_amount() -> None:
    looking, _ = domain.give_up_step(_payment(Step.CAPTURE, step_amount=600, fee_fixed=30), NOW)
    posted = Transfer("pay_1:capture", "acct_payer", "acct_payee", 600, "USD", "capture", "pay_1")
    done, events = domain.apply_capture_lookup(looking, [posted], NOW)
    assert (done.status, done.amount_captured, done.fee, done.step) == (
        PaymentStatus.SUCCEEDED,
        600,
        30,
        None,
    )
    assert events == ("payment.succeeded",)


def test_a_capture_not_found_after_its_deadline_voids_the_hold_and_fails_with_timeout() -> None:
    looking, _ = domain.give_up_step(_payment(Step.CAPTURE, step_amount=600), NOW)
    voiding, events = domain.apply_capture_lookup(looking, [], NOW)
    assert (voiding.step, voiding.failure_code, events) == (Step.VOID, "timeout", ())
    failed, events = domain.complete_step(voiding, NOW)
    assert (failed.status, events) == (PaymentStatus.FAILED, ("payment.failed",))


def test_a_void_that_finds_the_hold_posted_goes_back_to_finding_the_capture() -> None:
    looking, _ = domain.give_up_step(_payment(Step.CAPTURE, step_amount=600), NOW)
    voiding, _ = domain.apply_capture_lookup(looking, [], NOW)
    back = domain.void_found_posted(voiding, "pending_transfer_already_posted", NOW)
    assert back is not None
    assert back[0].step is Step.LOOKUP


@pytest.mark.parametrize("step", [Step.VOID, Step.LOOKUP])
def test_compensations_and_lookups_are_never_given_up(step: Step) -> None:
    with pytest.raises(ValueError, match="never given up"):
        domain.give_up_step(_payment(step), NOW)


def test_a_refund_past_its_deadline_only_looks_its_transfer_up_then_settles_on_what_it_finds() -> (
    None
):
    p = dataclasses.replace(
        _payment(Step.CAPTURE), status=PaymentStatus.SUCCEEDED, step=None, amount_captured=1_000
    )
    r = domain.new_refund(CreateRefund("ref_1", "pay_1"), p, 0, NOW)
    given_up = domain.REFUNDS.give_up(r, NOW)
    assert given_up is not None
    looking, events = given_up
    assert (looking.step, events) == (Step.LOOKUP, ())
    assert domain.refund_transfer(looking).id == "ref_1"
    found, _ = domain.settle_refund(looking, "exists", NOW)
    assert found.status is RefundStatus.SUCCEEDED
    missing, events = domain.settle_refund(looking, domain.TIMEOUT, NOW)
    assert (missing.status, missing.failure_code, events) == (
        RefundStatus.FAILED,
        "timeout",
        ("refund.failed",),
    )


def test_a_payout_gives_up_only_its_hold_and_then_voids_it() -> None:
    payout = domain.new_payout(CreatePayout("po_1", "acct_a", 500, "USD"), "ten_a", NOW)
    given_up = domain.give_up_payout(payout, NOW)
    assert given_up is not None
    voiding, _ = given_up
    assert (voiding.step, voiding.failure_code) == (Step.VOID, "timeout")
    failed, events = domain.apply_payout_ledger(voiding, "pending_transfer_not_found", NOW)
    assert (failed.status, failed.failure_code, events) == (
        PayoutStatus.FAILED,
        "timeout",
        ("payout.failed",),
    )
    posting = dataclasses.replace(payout, step=Step.POST)
    assert domain.give_up_payout(posting, NOW) is None
