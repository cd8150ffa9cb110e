"""The refund state machine: a single-phase transfer back from payee to payer.

The transfer's id is the refund's id. Past its deadline it is never sent
again: the ledger is asked whether it happened (``lookup``).
"""

from __future__ import annotations

from dataclasses import dataclass

from paymesh.contracts.events import REFUND_FAILED, REFUND_SUCCEEDED
from paymesh.payments.domain.common import SagaObject, Step, new_saga_object, validate_id
from paymesh.payments.domain.movements import Leg, Movement, MovementStatus
from paymesh.payments.domain.payments import Payment, PaymentStatus
from paymesh.payments.errors import AmountExceedsRefundable, InvalidRequest, InvalidState
from paymesh.platform.money import MAX_AMOUNT

__all__ = [
    "REFUNDS",
    "CreateRefund",
    "Refund",
    "RefundStatus",
    "new_refund",
    "refund_transfer",
    "same_refund_request",
    "settle_refund",
    "validate_refund",
]


RefundStatus = MovementStatus


@dataclass(frozen=True)
class CreateRefund:
    id: str
    payment_id: str
    # 0: everything captured and not yet refunded.
    amount: int = 0
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class Refund(SagaObject):
    """Money of a payment back to its payer."""

    payment_id: str
    status: MovementStatus
    # What the caller asked for (0: all that remained), to recognise a retry.
    requested_amount: int = 0
    reason: str = ""
    # The payment's accounts, copied so the step needs nothing else.
    payer_account_id: str = ""
    payee_account_id: str = ""


REFUNDS: Movement[Refund] = Movement(
    name="refund",
    path=(Step.TRANSFER,),
    legs={Step.TRANSFER: Leg("{id}", "refund")},
    accounts=lambda r: (r.payee_account_id, r.payer_account_id),
    reference=lambda r: r.payment_id,
    succeeded=REFUND_SUCCEEDED,
    failed=REFUND_FAILED,
    given_up={Step.TRANSFER: Step.LOOKUP},
)


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
    return new_saga_object(
        Refund,
        cmd,
        payment.tenant_id,
        now_us,
        Step.TRANSFER,
        status=MovementStatus.PROCESSING,
        amount=amount,
        requested_amount=cmd.amount,
        currency=payment.currency,
        payer_account_id=payment.payer_account_id,
        payee_account_id=payment.payee_account_id,
    )


# The refund's transitions, by the names its callers know.
refund_transfer = REFUNDS.transfer
settle_refund = REFUNDS.apply_ledger
