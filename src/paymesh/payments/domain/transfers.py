"""The P2P transfer state machine: one single-phase ledger transfer between two accounts.

A transfer moves money between two accounts of the tenant with one ledger
transfer ``{transfer_id}:move``; not enough money (or an unknown account)
fails it with a stable code.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum

from paymesh.contracts.events import TRANSFER_FAILED, TRANSFER_SUCCEEDED
from paymesh.payments.domain.common import (
    Step,
    Transfer,
    failure_code,
    validate_id,
    validate_money,
)
from paymesh.payments.errors import InvalidRequest

__all__ = [
    "CreateP2PTransfer",
    "P2PTransfer",
    "P2PTransferStatus",
    "move_transfer",
    "new_p2p_transfer",
    "same_p2p_request",
    "settle_p2p_transfer",
]


class P2PTransferStatus(StrEnum):
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class CreateP2PTransfer:
    id: str
    from_account_id: str
    to_account_id: str
    amount: int
    currency: str


@dataclass(frozen=True)
class P2PTransfer:
    id: str
    tenant_id: str
    from_account_id: str
    to_account_id: str
    amount: int
    currency: str
    status: P2PTransferStatus
    created_at_us: int
    updated_at_us: int
    failure_code: str = ""
    step: Step | None = None
    attempts: int = 0
    next_attempt_at_us: int = 0
    # When the step in progress was first recorded: its deadline counts from here.
    step_started_at_us: int = 0


def new_p2p_transfer(cmd: CreateP2PTransfer, tenant_id: str, now_us: int) -> P2PTransfer:
    """A valid new transfer, ``processing``, with its ledger transfer to run."""
    validate_id(cmd.id, "id")
    validate_money(cmd.amount, cmd.currency)
    if not cmd.from_account_id or not cmd.to_account_id:
        raise InvalidRequest("from_account_id and to_account_id are required")
    if cmd.from_account_id == cmd.to_account_id:
        raise InvalidRequest("from and to must be different accounts")
    return P2PTransfer(
        id=cmd.id,
        tenant_id=tenant_id,
        from_account_id=cmd.from_account_id,
        to_account_id=cmd.to_account_id,
        amount=cmd.amount,
        currency=cmd.currency,
        status=P2PTransferStatus.PROCESSING,
        created_at_us=now_us,
        updated_at_us=now_us,
        step=Step.TRANSFER,
    )


def same_p2p_request(t: P2PTransfer, cmd: CreateP2PTransfer, tenant_id: str) -> bool:
    """True when `cmd` asks for exactly the transfer already stored under its id."""
    return (
        t.tenant_id == tenant_id
        and t.from_account_id == cmd.from_account_id
        and t.to_account_id == cmd.to_account_id
        and t.amount == cmd.amount
        and t.currency == cmd.currency
    )


def move_transfer(t: P2PTransfer) -> Transfer:
    """The single-phase ledger transfer that moves the money: from → to."""
    return Transfer(
        id=f"{t.id}:move",
        debit_account_id=t.from_account_id,
        credit_account_id=t.to_account_id,
        amount=t.amount,
        currency=t.currency,
        code="transfer",
        reference=t.id,
    )


def settle_p2p_transfer(
    t: P2PTransfer, result: str, now_us: int
) -> tuple[P2PTransfer, tuple[str, ...]]:
    """Apply the ledger's answer (ok/exists: succeeded; anything else: failed)."""
    done = dataclasses.replace(t, step=None, updated_at_us=now_us, attempts=0)
    if result in ("ok", "exists"):
        return dataclasses.replace(done, status=P2PTransferStatus.SUCCEEDED), (TRANSFER_SUCCEEDED,)
    failed = dataclasses.replace(
        done, status=P2PTransferStatus.FAILED, failure_code=failure_code(result)
    )
    return failed, (TRANSFER_FAILED,)
