"""A capture or cancel sent again with its request_id is the same request, not a second one."""

from __future__ import annotations

import dataclasses

import pytest

from paymesh.payments import domain
from paymesh.payments.domain import (
    CaptureMethod,
    CreatePayment,
    Payment,
    PaymentStatus,
    RiskAssessment,
    Step,
)
from paymesh.payments.errors import IdReused, InvalidRequest, InvalidState, PaymentBusy

NOW = 1_700_000_000_000_000
APPROVE = RiskAssessment("approve", 5, (), "v1")


def _authorised() -> Payment:
    cmd = CreatePayment(
        id="pay_1",
        payer_account_id="acct_payer",
        payee_account_id="acct_payee",
        amount=1_000,
        currency="USD",
        capture_method=CaptureMethod.MANUAL,
    )
    p = domain.new_payment(cmd, "ten_1", NOW)
    p, _ = domain.apply_risk(p, APPROVE, NOW)
    p, _ = domain.complete_step(p, NOW)
    return p


def _captured(request_id: str = "req_a", amount: int | None = None) -> Payment:
    p = domain.begin_capture(_authorised(), amount, NOW, request_id)
    p, _ = domain.complete_step(p, NOW)
    return p


def _canceled(request_id: str = "req_a") -> Payment:
    p = domain.begin_cancel(_authorised(), NOW, request_id)
    p, _ = domain.complete_step(p, NOW)
    return p


def test_a_capture_records_its_request_id_on_the_payment() -> None:
    p = domain.begin_capture(_authorised(), None, NOW, "req_a")
    assert (p.step, p.capture_request_id, p.cancel_request_id) == (Step.CAPTURE, "req_a", "")


def test_the_same_capture_request_after_it_completed_answers_the_payment_as_it_is() -> None:
    captured = _captured("req_a")
    assert captured.status is PaymentStatus.SUCCEEDED
    assert domain.begin_capture(captured, None, NOW, "req_a") is captured
    assert domain.same_capture_request(captured, "req_a")


def test_another_capture_request_of_a_captured_payment_is_still_refused() -> None:
    captured = _captured("req_a")
    with pytest.raises(InvalidState, match="already captured"):
        domain.begin_capture(captured, None, NOW, "req_b")
    with pytest.raises(InvalidState, match="already captured"):
        domain.begin_capture(captured, None, NOW)  # no request id: never a retry


def test_a_capture_without_a_request_id_is_never_taken_for_a_retry() -> None:
    captured = domain.begin_capture(_authorised(), None, NOW)
    done, _ = domain.complete_step(captured, NOW)
    assert not domain.same_capture_request(done, "")
    with pytest.raises(InvalidState):
        domain.begin_capture(done, None, NOW, "")


def test_the_same_capture_request_while_it_runs_resumes_it_instead_of_being_busy() -> None:
    capturing = domain.begin_capture(_authorised(), 400, NOW, "req_a")
    again = domain.begin_capture(capturing, 400, NOW, "req_a")
    assert again is capturing
    assert (again.step, again.step_amount) == (Step.CAPTURE, 400)
    with pytest.raises(PaymentBusy):
        domain.begin_capture(capturing, 400, NOW, "req_b")
    with pytest.raises(PaymentBusy):
        domain.begin_cancel(capturing, NOW, "req_a")  # a cancel is another request


def test_the_same_capture_request_asking_for_another_amount_is_refused_as_id_reused() -> None:
    capturing = domain.begin_capture(_authorised(), 400, NOW, "req_a")
    with pytest.raises(IdReused):
        domain.begin_capture(capturing, 500, NOW, "req_a")
    captured, _ = domain.complete_step(capturing, NOW)
    with pytest.raises(IdReused):
        domain.begin_capture(captured, None, NOW, "req_a")  # the whole amount is 1 000
    assert domain.begin_capture(captured, 400, NOW, "req_a") is captured


def test_the_same_capture_request_after_it_was_refused_answers_the_failed_payment() -> None:
    capturing = domain.begin_capture(_authorised(), None, NOW, "req_a")
    voiding, _ = domain.fail_step(capturing, "insufficient_funds", "no money", NOW)
    assert voiding.step is Step.VOID  # the compensation is part of this request's saga
    assert domain.begin_capture(voiding, None, NOW, "req_a") is voiding
    failed, _ = domain.complete_step(voiding, NOW)
    assert failed.status is PaymentStatus.FAILED
    assert domain.begin_capture(failed, None, NOW, "req_a") is failed
    with pytest.raises(InvalidState):
        domain.begin_capture(failed, None, NOW, "req_b")


def test_the_same_cancel_request_after_it_completed_answers_the_canceled_payment() -> None:
    canceled = _canceled("req_a")
    assert canceled.status is PaymentStatus.CANCELED
    assert domain.begin_cancel(canceled, NOW, "req_a") is canceled
    with pytest.raises(InvalidState, match="canceled"):
        domain.begin_cancel(canceled, NOW, "req_b")
    with pytest.raises(InvalidState):
        domain.begin_capture(canceled, None, NOW, "req_a")  # a capture is another request


def test_the_same_cancel_request_while_it_runs_resumes_it_instead_of_being_busy() -> None:
    canceling = domain.begin_cancel(_authorised(), NOW, "req_a")
    assert canceling.cancel_request_id == "req_a"
    assert domain.begin_cancel(canceling, NOW, "req_a") is canceling
    with pytest.raises(PaymentBusy):
        domain.begin_cancel(canceling, NOW, "req_b")


def test_a_cancel_is_refused_after_the_authorisation_expired_whatever_its_request_id() -> None:
    p = dataclasses.replace(_authorised(), expires_at_us=NOW + 10)
    expired, _ = domain.complete_step(domain.begin_expiry(p, NOW + 10), NOW + 10)
    assert expired.status is PaymentStatus.CANCELED
    with pytest.raises(InvalidState):
        domain.begin_cancel(expired, NOW, "req_a")
    with pytest.raises(InvalidState):
        domain.begin_cancel(expired, NOW, "")


def test_a_malformed_request_id_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        domain.begin_capture(_authorised(), None, NOW, "not ok!")
    with pytest.raises(InvalidRequest):
        domain.begin_cancel(_authorised(), NOW, "x" * 49)
