"""The payout state machine: money out of an account to the bank.

``hold`` (pending account → funding, ``{payout_id}:hold``) → ``bank`` (push,
idempotent by the payout id) → ``post`` (``{payout_id}:post``) →
``succeeded``. Not enough money fails the payout at once; the bank's
failure voids the hold (``{payout_id}:void``, the compensation) and fails
the payout with the bank's code. A lost answer is never guessed: the payout
waits at ``bank_status`` and asks the bank until it knows. The hold has no
timeout: money the bank may have sent must not come back by itself. Only
the hold is given up (voided); once the bank may have paid, nothing is.
"""

from __future__ import annotations

from dataclasses import dataclass

from paymesh.contracts.events import PAYOUT_FAILED, PAYOUT_SUCCEEDED
from paymesh.payments.domain.common import Step, same_request
from paymesh.payments.domain.movements import (
    AccountMovement,
    Movement,
    MovementStatus,
    MoveMoney,
    hold_legs,
    into_funding,
    new_account_movement,
)

__all__ = [
    "PAYOUTS",
    "CreatePayout",
    "Payout",
    "PayoutStatus",
    "apply_payout_bank",
    "apply_payout_ledger",
    "give_up_payout",
    "new_payout",
    "payout_transfer",
    "same_payout_request",
]

PayoutStatus = MovementStatus


@dataclass(frozen=True)
class CreatePayout(MoveMoney):
    """Send money from an account to the bank."""


@dataclass(frozen=True, kw_only=True)
class Payout(AccountMovement):
    """Money out of one of the tenant's accounts to the bank."""


PAYOUTS: Movement[Payout] = Movement(
    name="payout",
    path=(Step.HOLD, Step.BANK, Step.POST),
    legs=hold_legs("{id}:", "payout", void_code="payout_reversal"),
    accounts=into_funding,
    succeeded=PAYOUT_SUCCEEDED,
    failed=PAYOUT_FAILED,
    given_up={Step.HOLD: Step.VOID},
)


def new_payout(cmd: CreatePayout, tenant_id: str, now_us: int) -> Payout:
    """A valid new payout, ``processing``, with the hold to make first."""
    return new_account_movement(Payout, cmd, tenant_id, now_us, first=Step.HOLD)


# The payout's transitions, by the names its callers know.
same_payout_request = same_request
payout_transfer = PAYOUTS.transfer
apply_payout_ledger = PAYOUTS.apply_ledger
apply_payout_bank = PAYOUTS.apply_bank
give_up_payout = PAYOUTS.give_up
