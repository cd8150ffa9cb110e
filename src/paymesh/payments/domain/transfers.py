"""The P2P transfer state machine: one single-phase ledger transfer between two accounts.

A transfer moves money between two accounts of the tenant with one ledger
transfer ``{transfer_id}:move``; not enough money (or an unknown account)
fails it with a stable code. Past its deadline the transfer is never sent
again: the ledger is asked whether it happened (``lookup``).
"""

from __future__ import annotations

from dataclasses import dataclass

from paymesh.contracts.events import TRANSFER_FAILED, TRANSFER_SUCCEEDED
from paymesh.payments.domain.common import (
    SagaObject,
    Step,
    new_saga_object,
    same_request,
    validate_id,
    validate_money,
    validate_pair,
)
from paymesh.payments.domain.movements import Leg, Movement, MovementStatus

__all__ = [
    "TRANSFERS",
    "CreateP2PTransfer",
    "P2PTransfer",
    "P2PTransferStatus",
    "move_transfer",
    "new_p2p_transfer",
    "same_p2p_request",
    "settle_p2p_transfer",
]

P2PTransferStatus = MovementStatus


@dataclass(frozen=True)
class CreateP2PTransfer:
    id: str
    from_account_id: str
    to_account_id: str
    amount: int
    currency: str


@dataclass(frozen=True, kw_only=True)
class P2PTransfer(SagaObject):
    """Money between two of the tenant's accounts."""

    from_account_id: str
    to_account_id: str
    status: MovementStatus


TRANSFERS: Movement[P2PTransfer] = Movement(
    name="transfer",
    path=(Step.TRANSFER,),
    legs={Step.TRANSFER: Leg("{id}:move", "transfer")},
    accounts=lambda t: (t.from_account_id, t.to_account_id),
    succeeded=TRANSFER_SUCCEEDED,
    failed=TRANSFER_FAILED,
    given_up={Step.TRANSFER: Step.LOOKUP},
)


def new_p2p_transfer(cmd: CreateP2PTransfer, tenant_id: str, now_us: int) -> P2PTransfer:
    """A valid new transfer, ``processing``, with its ledger transfer to run."""
    validate_id(cmd.id, "id")
    validate_money(cmd.amount, cmd.currency)
    validate_pair(("from", "to"), (cmd.from_account_id, cmd.to_account_id))
    return new_saga_object(
        P2PTransfer, cmd, tenant_id, now_us, Step.TRANSFER, status=MovementStatus.PROCESSING
    )


# The transfer's transitions, by the names its callers know.
same_p2p_request = same_request
move_transfer = TRANSFERS.transfer
settle_p2p_transfer = TRANSFERS.apply_ledger
