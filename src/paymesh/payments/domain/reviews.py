"""A payment in review, resolved by a human (or by the review's timeout) in risk.

Risk publishes ``review.approved`` or ``review.declined`` for the payment;
:func:`resolve_review` is what payments does with it. The hold is already in
place, so an approval continues exactly as after a hold (automatic capture:
the capture step, then ``succeeded``; manual: ``requires_capture``) and a
decline releases the hold (the void step) and fails the payment with
``risk_declined``. A payment that is no longer waiting in review (canceled,
expired, resolved already) is left alone: the resolution came too late.

A resolution may also come early: risk opens the review when it decides, so
an operator (or the review's timeout) can resolve it while payments is still
placing the hold (retried while the ledger is unavailable). Such a payment
is :func:`before_review`: the consumer waits until its hold step ends (in
review, or failed) rather than drop the resolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from paymesh.contracts.events import PAYMENT_REQUIRES_CAPTURE
from paymesh.payments.domain.common import Step, advance
from paymesh.payments.domain.payments import (
    CaptureMethod,
    Payment,
    PaymentStatus,
    Transition,
)

__all__ = ["RISK_DECLINED", "Resolution", "ReviewResolved", "before_review", "resolve_review"]

# The failure code of a payment risk declined, at once or in review.
RISK_DECLINED = "risk_declined"


class Resolution(StrEnum):
    APPROVE = "approve"
    DECLINE = "decline"


@dataclass(frozen=True)
class ReviewResolved:
    """Risk's word that the review of a payment ended, and how."""

    payment_id: str
    tenant_id: str
    resolution: Resolution
    resolved_by: str = ""
    note: str = ""


def before_review(p: Payment) -> bool:
    """True while the payment is still on its way to review: deciding, or placing the hold.

    Either step ends (the hold is given up after its deadline at the latest),
    so waiting for it is bounded.
    """
    return p.status is PaymentStatus.PROCESSING and p.step in (Step.RISK, Step.HOLD)


def resolve_review(p: Payment, resolved: ReviewResolved, now_us: int) -> Transition | None:
    """The payment after its review ended; None when it is not waiting in review."""
    if p.status is not PaymentStatus.IN_REVIEW or p.step is not None:
        return None
    if resolved.resolution is Resolution.DECLINE:
        by = f" by {resolved.resolved_by}" if resolved.resolved_by else ""
        voiding = advance(
            p,
            now_us,
            step=Step.VOID,
            step_amount=0,
            failure_code=RISK_DECLINED,
            failure_message=f"declined in review{by}",
        )
        return voiding, ()
    if p.capture_method is CaptureMethod.AUTOMATIC:
        capturing = advance(
            p, now_us, status=PaymentStatus.PROCESSING, step=Step.CAPTURE, step_amount=p.amount
        )
        return capturing, ()
    return advance(p, now_us, status=PaymentStatus.REQUIRES_CAPTURE), (PAYMENT_REQUIRES_CAPTURE,)
