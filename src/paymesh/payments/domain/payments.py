"""The payment state machine.

A payment moves ``processing`` → (``requires_capture`` →) ``succeeded``, or
ends ``canceled`` or ``failed``; ``in_review`` waits for a human. The step in
progress is recorded on the payment (``step``, with its parameter
``step_amount``), so a crash between the record and the remote call is
resumed by re-running the step; every ledger transfer id is derived from
the payment id and the step, so money moves once. The commands on an
existing payment (capture, cancel, expiry, each with its caller's
``request_id``) are in :mod:`.requests`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from paymesh.contracts.events import (
    PAYMENT_CANCELED,
    PAYMENT_FAILED,
    PAYMENT_IN_REVIEW,
    PAYMENT_REQUIRES_CAPTURE,
    PAYMENT_SUCCEEDED,
)
from paymesh.payments.domain.common import (
    TIMEOUT,
    SagaObject,
    Step,
    Transfer,
    TransferKind,
    advance,
    new_saga_object,
    same_request,
    validate_id,
    validate_money,
    validate_pair,
)
from paymesh.payments.domain.fees import NO_FEES, TenantFees, capture_fee, fee_transfer
from paymesh.payments.errors import (
    InvalidRequest,
)

__all__ = [
    "AUTHORIZATION_EXPIRED",
    "CancelPayment",
    "CaptureMethod",
    "CapturePayment",
    "CreatePayment",
    "Payment",
    "PaymentContext",
    "PaymentStatus",
    "RiskAssessment",
    "Transition",
    "apply_capture_lookup",
    "apply_risk",
    "batch_result",
    "complete_step",
    "fail_step",
    "give_up_step",
    "hold_timeout_s",
    "lookup_ids",
    "new_payment",
    "same_payment_request",
    "step_settled",
    "step_transfer",
    "step_transfers",
    "void_found_posted",
    "void_settled",
]

AUTHORIZATION_EXPIRED = "authorization_expired"


class PaymentStatus(StrEnum):
    PROCESSING = "processing"
    REQUIRES_CAPTURE = "requires_capture"
    SUCCEEDED = "succeeded"
    CANCELED = "canceled"
    FAILED = "failed"
    IN_REVIEW = "in_review"


class CaptureMethod(StrEnum):
    AUTOMATIC = "automatic"
    MANUAL = "manual"


@dataclass(frozen=True)
class PaymentContext:
    ip: str = ""
    device_id: str = ""
    country: str = ""


@dataclass(frozen=True)
class RiskAssessment:
    """What risk decided: "approve", "review" or "decline"."""

    decision: str
    score: int = 0
    reasons: tuple[str, ...] = ()
    rules_version: str = ""


@dataclass(frozen=True)
class CreatePayment:
    id: str
    payer_account_id: str
    payee_account_id: str
    amount: int
    currency: str
    capture_method: CaptureMethod | None
    description: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    context: PaymentContext = PaymentContext()


@dataclass(frozen=True)
class CapturePayment:
    id: str
    # None or 0: the whole authorised amount.
    amount: int | None = None
    # The caller's id of this request: the same id again is a retry of it ("": none).
    request_id: str = ""


@dataclass(frozen=True)
class CancelPayment:
    id: str
    # The caller's id of this request: the same id again is a retry of it ("": none).
    request_id: str = ""


@dataclass(frozen=True, kw_only=True)
class Payment(SagaObject):
    """Money from a payer to a payee: authorised (held), then captured or released."""

    payer_account_id: str
    payee_account_id: str
    capture_method: CaptureMethod
    status: PaymentStatus
    amount_captured: int = 0
    amount_refunded: int = 0
    fee: int = 0
    description: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    context: PaymentContext = PaymentContext()
    risk: RiskAssessment | None = None
    failure_message: str = ""
    # The parameter of the saga's step in progress (the amount to capture).
    step_amount: int = 0
    # The tenant's fee schedule when the payment was made: it prices every capture.
    fee_fixed: int = 0
    fee_basis_points: int = 0
    # When an uncaptured authorisation is canceled (0: never).
    expires_at_us: int = 0
    # The request_id of the capture, or of the cancel, that began ("": none, or no id).
    capture_request_id: str = ""
    cancel_request_id: str = ""


Transition = tuple[Payment, tuple[str, ...]]


def new_payment(
    cmd: CreatePayment,
    tenant_id: str,
    now_us: int,
    *,
    fees: TenantFees = NO_FEES,
    authorization_ttl_us: int = 0,
) -> Payment:
    """A valid new payment, ``processing``, with the risk step to run first.

    `fees` is the tenant's schedule now; an authorisation not captured within
    `authorization_ttl_us` (0: forever) is canceled.
    """
    validate_id(cmd.id, "id")
    validate_money(cmd.amount, cmd.currency)
    validate_pair(("payer", "payee"), (cmd.payer_account_id, cmd.payee_account_id))
    if cmd.capture_method is None:
        raise InvalidRequest("capture_method must be automatic or manual")
    return new_saga_object(
        Payment,
        cmd,
        tenant_id,
        now_us,
        Step.RISK,
        status=PaymentStatus.PROCESSING,
        metadata=dict(cmd.metadata),
        fee_fixed=fees.fixed,
        fee_basis_points=fees.basis_points,
        expires_at_us=now_us + authorization_ttl_us if authorization_ttl_us > 0 else 0,
    )


# The same fields, the same tenant: the same request.
same_payment_request = same_request


def hold_timeout_s(p: Payment) -> int:
    """The ledger's own expiry of the hold: a while after the authorisation expires.

    A safety net: the expiry sweep voids the hold first; should it not run,
    the ledger releases the money anyway.
    """
    if not p.expires_at_us:
        return 0
    ttl_s = -(-(p.expires_at_us - p.created_at_us) // 1_000_000)
    return ttl_s + max(60, ttl_s // 10)


def _fee(p: Payment, captured: int) -> int:
    return capture_fee(captured, fixed=p.fee_fixed, basis_points=p.fee_basis_points)


def step_transfers(payment: Payment) -> list[Transfer]:
    """The ledger transfers the payment's current ledger step asks for, as one batch.

    A capture with a fee is the post of the hold linked to the fee transfer
    (payee → the tenant's revenue account): both happen or neither.
    """
    p = payment
    base = Transfer(
        id=f"{p.id}:hold",
        debit_account_id=p.payer_account_id,
        credit_account_id=p.payee_account_id,
        amount=p.amount,
        currency=p.currency,
        code="payment",
        reference=p.id,
        kind=TransferKind.PENDING,
    )
    if p.step is Step.HOLD:
        return [dataclasses.replace(base, timeout_seconds=hold_timeout_s(p))]
    if p.step is Step.CAPTURE:
        fee = _fee(p, p.step_amount)
        capture = dataclasses.replace(
            base,
            id=f"{p.id}:capture",
            amount=p.step_amount,
            code="capture",
            kind=TransferKind.POST_PENDING,
            pending_id=base.id,
            linked=fee > 0,
        )
        if fee == 0:
            return [capture]
        return [capture, fee_transfer(p.id, p.tenant_id, p.payee_account_id, fee, p.currency)]
    if p.step is Step.VOID:
        void = dataclasses.replace(
            base,
            id=f"{p.id}:void",
            code="cancel",
            kind=TransferKind.VOID_PENDING,
            pending_id=base.id,
        )
        return [void]
    raise ValueError(f"step {p.step} of payment {p.id} moves no money")


def step_transfer(payment: Payment) -> Transfer:
    """The main ledger transfer of the payment's current ledger step."""
    return step_transfers(payment)[0]


def batch_result(results: list[str]) -> str:
    """One result for a linked batch: "ok"/"exists" when all are, else the first refusal."""
    refusals = [r for r in results if r not in ("ok", "exists")]
    if not refusals:
        return results[0] if results else "ok"
    causes = [r for r in refusals if r != "linked_event_failed"]
    return (causes or refusals)[0]


def _fail(p: Payment, code: str, message: str, now_us: int, **changes: Any) -> Transition:
    """The payment fails for good with a stable code and why."""
    failed = advance(
        p,
        now_us,
        status=PaymentStatus.FAILED,
        step=None,
        failure_code=code,
        failure_message=message,
        **changes,
    )
    return failed, (PAYMENT_FAILED,)


def give_up_step(p: Payment, now_us: int) -> Transition:
    """The step's deadline passed and it still fails transiently: give up, safely.

    ``risk``: nothing moved, the payment fails with ``timeout``. ``hold``: the
    hold may exist, so its void (the compensation, never given up) comes next
    and the payment fails with ``timeout`` once it is done. ``capture``: the
    post may have happened, so it is never sent again; the ledger is asked
    (step ``lookup``) whether it did. Other steps are never given up.
    """
    message = f"the {p.step} step did not get an answer before its deadline"
    if p.step is Step.RISK:
        return _fail(p, TIMEOUT, message, now_us)
    if p.step is Step.HOLD:
        voiding = advance(p, now_us, step=Step.VOID, failure_code=TIMEOUT, failure_message=message)
        return voiding, ()
    if p.step is Step.CAPTURE:
        return advance(p, now_us, step=Step.LOOKUP, failure_message=message), ()
    raise ValueError(f"the {p.step} step of payment {p.id} is never given up")


def lookup_ids(p: Payment) -> list[str]:
    """The transfers a capture given up asks the ledger about: its post and its fee."""
    return [f"{p.id}:capture", f"{p.id}:fee"]


def apply_capture_lookup(p: Payment, found: Sequence[Transfer], now_us: int) -> Transition:
    """What the ledger knows of a capture given up: posted, it succeeded; else void the hold.

    The post and the fee are one linked batch, so the post alone tells.
    """
    _expect_step(p, Step.LOOKUP)
    posted = [t for t in found if t.id == f"{p.id}:capture"]
    if posted:
        amount = posted[0].amount
        succeeded = advance(
            p,
            now_us,
            status=PaymentStatus.SUCCEEDED,
            amount_captured=amount,
            fee=_fee(p, amount),
            step=None,
            step_amount=amount,
            failure_message="",
        )
        return succeeded, (PAYMENT_SUCCEEDED,)
    voiding = advance(p, now_us, step=Step.VOID, step_amount=0, failure_code=TIMEOUT)
    return voiding, ()


def void_settled(p: Payment, result: str) -> bool:
    """True when a void's result means the hold is released (or was never made).

    ``pending_transfer_not_found`` counts only for a hold given up after its
    deadline: the hold step is never sent again, so no hold can appear later.
    """
    if step_settled(Step.VOID, result):
        return True
    return p.failure_code == TIMEOUT and result == "pending_transfer_not_found"


def void_found_posted(p: Payment, result: str, now_us: int) -> Transition | None:
    """A void after a capture given up that finds the hold posted: the capture happened.

    The payment goes back to asking the ledger for the capture (None: not that case).
    """
    posted = result == "pending_transfer_already_posted"
    if p.step is Step.VOID and p.failure_code == TIMEOUT and posted:
        return advance(p, now_us, step=Step.LOOKUP), ()
    return None


def apply_risk(p: Payment, risk: RiskAssessment, now_us: int) -> Transition:
    """Record risk's decision: a decline fails the payment, otherwise the hold comes next."""
    _expect_step(p, Step.RISK)
    if risk.decision == "decline":
        reasons = ", ".join(risk.reasons) or "declined"
        return _fail(p, "risk_declined", f"declined by risk: {reasons}", now_us, risk=risk)
    return advance(p, now_us, risk=risk, step=Step.HOLD), ()


def step_settled(step: Step, result: str) -> bool:
    """True when a ledger result means the step's transfer is done."""
    if result in ("ok", "exists"):
        return True
    # The hold is already released: the cancel has nothing left to do.
    return step is Step.VOID and result in (
        "pending_transfer_expired",
        "pending_transfer_already_voided",
    )


def complete_step(p: Payment, now_us: int) -> Transition:
    """Apply a successful ledger step: the next step, or the next status."""
    if p.step is Step.HOLD:
        if p.risk is not None and p.risk.decision == "review":
            return advance(p, now_us, status=PaymentStatus.IN_REVIEW, step=None), (
                PAYMENT_IN_REVIEW,
            )
        if p.capture_method is CaptureMethod.AUTOMATIC:
            return advance(p, now_us, step=Step.CAPTURE, step_amount=p.amount), ()
        return advance(p, now_us, status=PaymentStatus.REQUIRES_CAPTURE, step=None), (
            PAYMENT_REQUIRES_CAPTURE,
        )
    if p.step is Step.CAPTURE:
        succeeded = advance(
            p,
            now_us,
            status=PaymentStatus.SUCCEEDED,
            amount_captured=p.step_amount,
            fee=_fee(p, p.step_amount),
            step=None,
        )
        return succeeded, (PAYMENT_SUCCEEDED,)
    if p.step is Step.VOID:
        if p.failure_code and p.failure_code != AUTHORIZATION_EXPIRED:
            # The compensation of a refused capture: the money is back, the payment failed.
            return advance(p, now_us, status=PaymentStatus.FAILED, step=None), (PAYMENT_FAILED,)
        return advance(p, now_us, status=PaymentStatus.CANCELED, step=None), (PAYMENT_CANCELED,)
    raise ValueError(f"payment {p.id} has no ledger step in progress")


def fail_step(p: Payment, code: str, message: str, now_us: int) -> Transition:
    """A step was refused for good: the payment fails with a stable code.

    A refused capture leaves a hold behind, so the payment first voids it
    (the compensation) and fails when the money is back.
    """
    if p.step is None:
        raise ValueError(f"payment {p.id} has no step in progress")
    if p.step is Step.CAPTURE:
        voiding = advance(
            p, now_us, step=Step.VOID, step_amount=0, failure_code=code, failure_message=message
        )
        return voiding, ()
    if p.step is Step.VOID and p.failure_code:
        code, message = p.failure_code, f"{p.failure_message}; then the void failed: {message}"
    return _fail(p, code, message, now_us)


def _expect_step(p: Payment, step: Step) -> None:
    if p.step is not step:
        raise ValueError(f"payment {p.id} is at step {p.step}, not {step}")
