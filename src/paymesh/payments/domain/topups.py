"""The top-up state machine: money in from the bank, through the tenant's funding account.

``bank`` (pull the money: idempotent by the top-up id) → ``transfer`` (credit
funding → account, ``{topup_id}:credit``) → ``succeeded``. The bank's
failure fails the top-up; an answer the bank did not give (a timeout) is
never guessed: the top-up waits at ``bank_status`` and asks the bank what
became of the pull until it knows. Nothing is given up: once the bank may
have taken the money, the credit must arrive.
"""

from __future__ import annotations

from dataclasses import dataclass

from paymesh.contracts.events import TOPUP_FAILED, TOPUP_SUCCEEDED
from paymesh.payments.domain.common import Step, same_request
from paymesh.payments.domain.movements import (
    AccountMovement,
    Leg,
    Movement,
    MovementStatus,
    MoveMoney,
    from_funding,
    new_account_movement,
)

__all__ = [
    "TOPUPS",
    "CreateTopup",
    "Topup",
    "TopupStatus",
    "apply_topup_bank",
    "fail_topup",
    "new_topup",
    "same_topup_request",
    "settle_topup",
    "topup_transfer",
]

TopupStatus = MovementStatus


@dataclass(frozen=True)
class CreateTopup(MoveMoney):
    """Bring money in from the bank to an account."""


@dataclass(frozen=True, kw_only=True)
class Topup(AccountMovement):
    """Money in from the bank to one of the tenant's accounts."""


TOPUPS: Movement[Topup] = Movement(
    name="top-up",
    path=(Step.BANK, Step.TRANSFER),
    legs={Step.TRANSFER: Leg("{id}:credit", "topup")},
    accounts=from_funding,
    succeeded=TOPUP_SUCCEEDED,
    failed=TOPUP_FAILED,
)


def new_topup(cmd: CreateTopup, tenant_id: str, now_us: int) -> Topup:
    """A valid new top-up, ``processing``, with the bank pull to run first."""
    return new_account_movement(Topup, cmd, tenant_id, now_us, first=Step.BANK)


# The top-up's transitions, by the names its callers know.
same_topup_request = same_request
topup_transfer = TOPUPS.transfer
settle_topup = TOPUPS.apply_ledger
apply_topup_bank = TOPUPS.apply_bank
fail_topup = TOPUPS.fail
