"""Commands on an existing payment: begin its capture, its cancel, or its expiry.

A capture or cancel carries a ``request_id`` chosen by its caller, recorded
on the payment when the step begins. The same request sent again (its answer
was lost in a crash) is recognised by that id: it finishes what is left of
its saga and answers the payment as it is, instead of being refused as a
second capture. Another request_id is another request: refused as before.
"""

from __future__ import annotations

import dataclasses

from paymesh.payments.domain.common import Step, validate_id
from paymesh.payments.domain.payments import AUTHORIZATION_EXPIRED, Payment, PaymentStatus
from paymesh.payments.errors import (
    AmountExceedsAuthorized,
    IdReused,
    InvalidRequest,
    InvalidState,
    PaymentBusy,
)

__all__ = [
    "begin_cancel",
    "begin_capture",
    "begin_expiry",
    "same_cancel_request",
    "same_capture_request",
]


def same_capture_request(p: Payment, request_id: str) -> bool:
    """True when `request_id` is the capture request that already began on `p`."""
    return bool(request_id) and p.capture_request_id == request_id


def same_cancel_request(p: Payment, request_id: str) -> bool:
    """True when `request_id` is the cancel request that already began on `p`."""
    return bool(request_id) and p.cancel_request_id == request_id


def begin_capture(p: Payment, amount: int | None, now_us: int, request_id: str = "") -> Payment:
    """Start capturing all (None or 0) or part of the authorised amount.

    The capture that already began with `request_id` asked again is the same
    request: `p` itself is answered, whatever its state (the caller runs the
    step still recorded, if any), unless it asks for another amount.
    """
    if same_capture_request(p, request_id):
        _check_same_capture_amount(p, amount, request_id)
        return p
    if request_id:
        validate_id(request_id, "request_id")
    if p.status is PaymentStatus.SUCCEEDED:
        raise InvalidState(f"payment {p.id} is already captured")
    if p.status is not PaymentStatus.REQUIRES_CAPTURE:
        raise InvalidState(f"cannot capture a payment that is {p.status}")
    if p.step is not None:
        raise PaymentBusy(f"payment {p.id} is already being {_doing(p.step)}")
    if amount is not None and amount < 0:
        raise InvalidRequest("amount must not be negative")
    amount = amount or p.amount
    if amount > p.amount:
        raise AmountExceedsAuthorized(f"cannot capture {amount}: {p.amount} is authorised")
    return dataclasses.replace(
        p,
        step=Step.CAPTURE,
        step_amount=amount,
        updated_at_us=now_us,
        capture_request_id=request_id,
    )


def _check_same_capture_amount(p: Payment, amount: int | None, request_id: str) -> None:
    """Refuse a retry of a capture that asks for another amount than the one it began with.

    The amount is known while the capture runs and once it succeeded; after a
    refused capture (compensated, the payment failed) the retry is answered as is.
    """
    wanted = amount or p.amount
    if p.step in (Step.CAPTURE, Step.LOOKUP):
        began = p.step_amount
    elif p.status is PaymentStatus.SUCCEEDED:
        began = p.amount_captured
    else:
        return
    if wanted != began:
        raise IdReused(f"request_id {request_id} already captures {began}, not {wanted}")


def begin_cancel(p: Payment, now_us: int, request_id: str = "") -> Payment:
    """Start releasing the hold of an authorised (or in review) payment.

    The cancel that already began with `request_id` asked again is the same
    request: `p` itself is answered, whatever its state (the caller runs the
    step still recorded, if any).
    """
    if same_cancel_request(p, request_id):
        return p
    if request_id:
        validate_id(request_id, "request_id")
    if p.status not in (PaymentStatus.REQUIRES_CAPTURE, PaymentStatus.IN_REVIEW):
        raise InvalidState(f"cannot cancel a payment that is {p.status}")
    if p.step is not None:
        raise PaymentBusy(f"payment {p.id} is already being {_doing(p.step)}")
    return dataclasses.replace(
        p, step=Step.VOID, step_amount=0, updated_at_us=now_us, cancel_request_id=request_id
    )


def begin_expiry(p: Payment, now_us: int) -> Payment:
    """Start canceling an authorisation that was not captured in time (void its hold)."""
    if p.status not in (PaymentStatus.REQUIRES_CAPTURE, PaymentStatus.IN_REVIEW):
        raise InvalidState(f"a payment that is {p.status} holds no authorisation")
    if p.step is not None:
        raise PaymentBusy(f"payment {p.id} is already being {_doing(p.step)}")
    if not p.expires_at_us or now_us < p.expires_at_us:
        raise InvalidState(f"the authorisation of payment {p.id} has not expired")
    return dataclasses.replace(
        p,
        step=Step.VOID,
        step_amount=0,
        failure_code=AUTHORIZATION_EXPIRED,
        failure_message="the authorisation expired before it was captured",
        updated_at_us=now_us,
    )


def _doing(step: Step) -> str:
    return {Step.CAPTURE: "captured", Step.LOOKUP: "captured", Step.VOID: "canceled"}.get(
        step, "processed"
    )
