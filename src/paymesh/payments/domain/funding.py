"""Top-ups and payouts: money between the tenant's accounts and the bank.

Money outside the platform stands in the tenant's funding account (one per
currency, opened on demand, allowed to go negative). Each is a
:class:`~paymesh.payments.domain.movements.Movement`:

- a top-up: ``bank`` (pull the money: idempotent by the top-up id) →
  ``transfer`` (credit funding → account, ``{topup_id}:credit``) →
  ``succeeded``. The bank's failure fails it. Nothing is given up: once the
  bank may have taken the money, the credit must arrive.
- a payout: ``hold`` (pending account → funding, ``{payout_id}:hold``) →
  ``bank`` (push, idempotent by the payout id) → ``post``
  (``{payout_id}:post``) → ``succeeded``. Not enough money fails it at once;
  the bank's failure voids the hold (``{payout_id}:void``, the compensation)
  and fails it with the bank's code. The hold has no timeout: money the bank
  may have sent must not come back by itself. Only the hold is given up
  (voided); once the bank may have paid, nothing is.

A lost bank answer is never guessed: the object waits at ``bank_status`` and
asks the bank until it knows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from paymesh.contracts.events import (
    PAYOUT_FAILED,
    PAYOUT_SUCCEEDED,
    TOPUP_FAILED,
    TOPUP_SUCCEEDED,
)
from paymesh.payments.domain.common import (
    SagaObject,
    Step,
    new_saga_object,
    same_request,
    validate_id,
    validate_money,
)
from paymesh.payments.domain.movements import Leg, Movement, MovementStatus, hold_legs
from paymesh.payments.errors import InvalidRequest

__all__ = [
    "PAYOUTS",
    "TOPUPS",
    "AccountMovement",
    "CreatePayout",
    "CreateTopup",
    "MoveMoney",
    "Payout",
    "PayoutStatus",
    "Topup",
    "TopupStatus",
    "apply_payout_bank",
    "apply_payout_ledger",
    "apply_topup_bank",
    "fail_topup",
    "from_funding",
    "funding_account_id",
    "give_up_payout",
    "into_funding",
    "new_account_movement",
    "new_payout",
    "new_topup",
    "payout_transfer",
    "same_payout_request",
    "same_topup_request",
    "settle_topup",
    "topup_transfer",
]

TopupStatus = PayoutStatus = MovementStatus


def funding_account_id(tenant_id: str, currency: str) -> str:
    """The tenant's account standing for money outside the platform, per currency."""
    return f"acct_funding_{tenant_id}_{currency.lower()}"


@dataclass(frozen=True)
class MoveMoney:
    """A command moving money between the world outside and one of the tenant's accounts."""

    id: str
    account_id: str
    amount: int
    currency: str


class CreateTopup(MoveMoney):
    """Bring money in from the bank to an account."""


class CreatePayout(MoveMoney):
    """Send money from an account to the bank."""


@dataclass(frozen=True, kw_only=True)
class AccountMovement(SagaObject):
    """Money between one of the tenant's accounts and the world outside (its funding account)."""

    account_id: str
    status: MovementStatus


class Topup(AccountMovement):
    """Money in from the bank to one of the tenant's accounts."""


class Payout(AccountMovement):
    """Money out of one of the tenant's accounts to the bank."""


def into_funding(obj: AccountMovement) -> tuple[str, str]:
    """Money out: the account → the tenant's funding account."""
    return obj.account_id, funding_account_id(obj.tenant_id, obj.currency)


def from_funding(obj: AccountMovement) -> tuple[str, str]:
    """Money in: the tenant's funding account → the account."""
    return funding_account_id(obj.tenant_id, obj.currency), obj.account_id


TOPUPS: Movement[Topup] = Movement(
    name="top-up",
    path=(Step.BANK, Step.TRANSFER),
    legs={Step.TRANSFER: Leg("{id}:credit", "topup")},
    accounts=from_funding,
    succeeded=TOPUP_SUCCEEDED,
    failed=TOPUP_FAILED,
)

PAYOUTS: Movement[Payout] = Movement(
    name="payout",
    path=(Step.HOLD, Step.BANK, Step.POST),
    legs=hold_legs("{id}:", "payout", void_code="payout_reversal"),
    accounts=into_funding,
    succeeded=PAYOUT_SUCCEEDED,
    failed=PAYOUT_FAILED,
    given_up={Step.HOLD: Step.VOID},
)


A = TypeVar("A", bound=AccountMovement)


def new_account_movement(
    cls: type[A], cmd: MoveMoney, tenant_id: str, now_us: int, first: Step
) -> A:
    """A valid new `cls`, ``processing``, with step `first` to run."""
    validate_id(cmd.id, "id")
    validate_money(cmd.amount, cmd.currency)
    if not cmd.account_id:
        raise InvalidRequest("account_id is required")
    return new_saga_object(cls, cmd, tenant_id, now_us, first, status=MovementStatus.PROCESSING)


def new_topup(cmd: CreateTopup, tenant_id: str, now_us: int) -> Topup:
    """A valid new top-up, ``processing``, with the bank pull to run first."""
    return new_account_movement(Topup, cmd, tenant_id, now_us, first=Step.BANK)


def new_payout(cmd: CreatePayout, tenant_id: str, now_us: int) -> Payout:
    """A valid new payout, ``processing``, with the hold to make first."""
    return new_account_movement(Payout, cmd, tenant_id, now_us, first=Step.HOLD)


# Their transitions, by the names their callers know.
same_topup_request = same_payout_request = same_request
topup_transfer = TOPUPS.transfer
settle_topup = TOPUPS.apply_ledger
apply_topup_bank = TOPUPS.apply_bank
fail_topup = TOPUPS.fail
payout_transfer = PAYOUTS.transfer
apply_payout_ledger = PAYOUTS.apply_ledger
apply_payout_bank = PAYOUTS.apply_bank
give_up_payout = PAYOUTS.give_up
