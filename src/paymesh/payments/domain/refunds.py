"""The refund state machine: a single-phase transfer back from payee to payer."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum

from paymesh.contracts.events import REFUND_FAILED, REFUND_SUCCEEDED
from paymesh.payments.domain.common import Step, Transfer, failure_code, validate_id
from paymesh.payments.domain.payments import Payment, PaymentStatus
from paymesh.payments.errors import AmountExceedsRefundable, InvalidRequest, InvalidState
from paymesh.platform.money import MAX_AMOUNT

__all__ = [
    "CreateRefund",
    "Refund",
    "RefundStatus",
    "new_refund",
    "refund_transfer",
    "same_refund_request",
    "settle_refund",
    "validate_refund",
]


class RefundStatus(StrEnum):
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class CreateRefund:
    id: str
    payment_id: str
    # 0: everything captured and not yet refunded.
    amount: int = 0
    reason: str = ""


@dataclass(frozen=True)
class Refund:
    id: str
    tenant_id: str
    payment_id: str
    amount: int
    currency: str
    status: RefundStatus
    created_at_us: int
    updated_at_us: int
    # What the caller asked for (0: all that remained), to recognise a retry.
    requested_amount: int = 0
    reason: str = ""
    failure_code: str = ""
    # The payment's accounts, copied so the step needs nothing else.
    payer_account_id: str = ""
    payee_account_id: str = ""
    step: Step | None = None
    attempts: int = 0
    next_attempt_at_us: int = 0
    # When the step in progress was first recorded: its deadline counts from here.
    step_started_at_us: int = 0


def same_refund_request(refund: Refund, cmd: CreateRefund, tenant_id: str) -> bool:
    """True when `cmd` asks for exactly the refund already stored under its id."""
    return (
        refund.tenant_id == tenant_id
        and refund.payment_id == cmd.payment_id
        and refund.requested_amount == cmd.amount
        and refund.reason == cmd.reason
    )


def validate_refund(cmd: CreateRefund) -> None:
    """Refuse a malformed refund command before anything is read."""
    validate_id(cmd.id, "id")
    if not cmd.payment_id:
        raise InvalidRequest("payment_id is required")
    if cmd.amount < 0 or cmd.amount > MAX_AMOUNT:
        raise InvalidRequest(f"amount must be between 0 and {MAX_AMOUNT}")


def new_refund(cmd: CreateRefund, payment: Payment, reserved: int, now_us: int) -> Refund:
    """A refund of `payment`, given `reserved`: the sum of its refunds that did not fail."""
    if payment.status is not PaymentStatus.SUCCEEDED:
        raise InvalidState(f"cannot refund a payment that is {payment.status}")
    refundable = payment.amount_captured - reserved
    amount = cmd.amount or refundable
    if amount <= 0 or amount > refundable:
        raise AmountExceedsRefundable(
            f"cannot refund {amount or 'anything'}: {max(refundable, 0)} is refundable"
        )
    return Refund(
        id=cmd.id,
        tenant_id=payment.tenant_id,
        payment_id=payment.id,
        amount=amount,
        currency=payment.currency,
        status=RefundStatus.PROCESSING,
        created_at_us=now_us,
        updated_at_us=now_us,
        requested_amount=cmd.amount,
        reason=cmd.reason,
        payer_account_id=payment.payer_account_id,
        payee_account_id=payment.payee_account_id,
        step=Step.TRANSFER,
    )


def refund_transfer(r: Refund) -> Transfer:
    """The single-phase transfer that gives the money back: payee → payer."""
    return Transfer(
        id=r.id,
        debit_account_id=r.payee_account_id,
        credit_account_id=r.payer_account_id,
        amount=r.amount,
        currency=r.currency,
        code="refund",
        reference=r.payment_id,
    )


def settle_refund(r: Refund, result: str, now_us: int) -> tuple[Refund, tuple[str, ...]]:
    """Apply the ledger's answer to the refund transfer (ok/exists: succeeded)."""
    if result in ("ok", "exists"):
        done = dataclasses.replace(
            r, status=RefundStatus.SUCCEEDED, step=None, updated_at_us=now_us, attempts=0
        )
        return done, (REFUND_SUCCEEDED,)
    failed = dataclasses.replace(
        r,
        status=RefundStatus.FAILED,
        failure_code=failure_code(result),
        step=None,
        updated_at_us=now_us,
        attempts=0,
    )
    return failed, (REFUND_FAILED,)
