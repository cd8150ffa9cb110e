"""A payment in review, resolved: approval continues as after a hold, decline releases it."""

from __future__ import annotations

import dataclasses

import pytest

from paymesh.payments import domain
from paymesh.payments.domain import (
    CaptureMethod,
    CreatePayment,
    Payment,
    PaymentStatus,
    Resolution,
    ReviewResolved,
    RiskAssessment,
    Step,
)

NOW = 1_700_000_000_000_000
LATER = NOW + 5_000_000
REVIEW = RiskAssessment("review", 60, ("velocity_payer_count",), "v1")


def _in_review(method: CaptureMethod = CaptureMethod.AUTOMATIC) -> Payment:
    cmd = CreatePayment(
        id="pay_1",
        payer_account_id="acct_payer",
        payee_account_id="acct_payee",
        amount=1_000,
        currency="USD",
        capture_method=method,
    )
    p = domain.new_payment(cmd, "ten_1", NOW)
    p, _ = domain.apply_risk(p, REVIEW, NOW)
    p, _ = domain.complete_step(p, NOW)
    assert p.status is PaymentStatus.IN_REVIEW
    return p


def _resolved(resolution: Resolution) -> ReviewResolved:
    return ReviewResolved("pay_1", "ten_1", resolution, resolved_by="cli_ops", note="ok")


def test_an_approved_automatic_payment_goes_on_to_capture_the_whole_amount() -> None:
    out = domain.resolve_review(_in_review(), _resolved(Resolution.APPROVE), LATER)
    assert out is not None
    p, events = out
    assert (p.status, p.step, p.step_amount, events) == (
        PaymentStatus.PROCESSING,
        Step.CAPTURE,
        1_000,
        (),
    )
    done, events = domain.complete_step(p, LATER)
    assert (done.status, done.amount_captured, events) == (
        PaymentStatus.SUCCEEDED,
        1_000,
        ("payment.succeeded",),
    )


def test_an_approved_manual_payment_requires_capture() -> None:
    out = domain.resolve_review(
        _in_review(CaptureMethod.MANUAL), _resolved(Resolution.APPROVE), LATER
    )
    assert out is not None
    p, events = out
    assert (p.status, p.step, events) == (
        PaymentStatus.REQUIRES_CAPTURE,
        None,
        ("payment.requires_capture",),
    )


def test_a_declined_review_voids_the_hold_then_fails_with_risk_declined() -> None:
    out = domain.resolve_review(_in_review(), _resolved(Resolution.DECLINE), LATER)
    assert out is not None
    p, events = out
    assert (p.step, p.failure_code, events) == (Step.VOID, "risk_declined", ())
    assert domain.step_transfer(p).id == "pay_1:void"
    done, events = domain.complete_step(p, LATER)
    assert (done.status, done.failure_code, events) == (
        PaymentStatus.FAILED,
        "risk_declined",
        ("payment.failed",),
    )
    assert done.risk == REVIEW


@pytest.mark.parametrize(
    "changes",
    [
        {"status": PaymentStatus.CANCELED},
        {"status": PaymentStatus.REQUIRES_CAPTURE},
        {"status": PaymentStatus.SUCCEEDED},
        {"status": PaymentStatus.FAILED},
        # Being canceled (its void recorded) while still in review.
        {"step": Step.VOID},
    ],
)
@pytest.mark.parametrize("resolution", list(Resolution))
def test_a_resolution_for_a_payment_not_waiting_in_review_changes_nothing(
    changes: dict[str, object], resolution: Resolution
) -> None:
    p = dataclasses.replace(_in_review(), **changes)  # type: ignore[arg-type]
    assert domain.resolve_review(p, _resolved(resolution), LATER) is None


@pytest.mark.parametrize(
    ("changes", "waiting"),
    [
        ({"status": PaymentStatus.PROCESSING, "step": Step.RISK}, True),
        ({"status": PaymentStatus.PROCESSING, "step": Step.HOLD}, True),
        ({}, False),  # in review
        ({"status": PaymentStatus.PROCESSING, "step": Step.CAPTURE}, False),
        ({"status": PaymentStatus.PROCESSING, "step": Step.VOID}, False),
        ({"status": PaymentStatus.FAILED}, False),
    ],
)
def test_only_a_payment_still_deciding_or_holding_is_before_its_review(
    changes: dict[str, object], waiting: bool
) -> None:
    p = dataclasses.replace(_in_review(), **changes)  # type: ignore[arg-type]
    assert domain.before_review(p) is waiting


def test_a_review_event_with_fields_payments_does_not_know_is_read_all_the_same() -> None:
    from paymesh.contracts.events import Event
    from paymesh.payments.events import review_resolved

    def review(type: str, **extra: object) -> Event:
        data = {"payment_id": "pay_1", "tenant_id": "ten_1", "resolution": "approve", **extra}
        return Event(
            id="evt_1", source="paymesh.risk", type=type, subject="pay_1",
            time="2026-01-01T00:00:00Z", tenant="ten_1", data=data,
        )  # fmt: skip

    plain = review_resolved(review("review.approved"))
    assert plain is not None
    assert review_resolved(review("review.approved", escalated_to="team-b")) == plain
    assert review_resolved(review("review.escalated")) is None
