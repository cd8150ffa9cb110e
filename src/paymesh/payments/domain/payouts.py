"""The payout state machine: money out of an account to the bank.

``hold`` (pending account → funding, ``{payout_id}:hold``) → ``bank`` (push,
idempotent by the payout id) → ``post`` (``{payout_id}:post``) →
``succeeded``. Not enough money fails the payout at once; the bank's
failure voids the hold (``{payout_id}:void``, the compensation) and fails
the payout with the bank's code. A lost answer is never guessed: the payout
waits at ``bank_status`` and asks the bank until it knows. The hold has no
timeout: money the bank may have sent must not come back by itself.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum

from paymesh.contracts.events import PAYOUT_FAILED, PAYOUT_SUCCEEDED
from paymesh.payments.domain.common import (
    TIMEOUT,
    BankOutcome,
    BankResult,
    Step,
    Transfer,
    TransferKind,
    failure_code,
    validate_id,
    validate_money,
)
from paymesh.payments.domain.topups import funding_account_id
from paymesh.payments.errors import InvalidRequest

__all__ = [
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


class PayoutStatus(StrEnum):
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class CreatePayout:
    id: str
    account_id: str
    amount: int
    currency: str


@dataclass(frozen=True)
class Payout:
    id: str
    tenant_id: str
    account_id: str
    amount: int
    currency: str
    status: PayoutStatus
    created_at_us: int
    updated_at_us: int
    failure_code: str = ""
    step: Step | None = None
    attempts: int = 0
    next_attempt_at_us: int = 0
    # When the step in progress was first recorded: its deadline counts from here.
    step_started_at_us: int = 0


PayoutTransition = tuple[Payout, tuple[str, ...]]


def new_payout(cmd: CreatePayout, tenant_id: str, now_us: int) -> Payout:
    """A valid new payout, ``processing``, with the hold to make first."""
    validate_id(cmd.id, "id")
    validate_money(cmd.amount, cmd.currency)
    if not cmd.account_id:
        raise InvalidRequest("account_id is required")
    return Payout(
        id=cmd.id,
        tenant_id=tenant_id,
        account_id=cmd.account_id,
        amount=cmd.amount,
        currency=cmd.currency,
        status=PayoutStatus.PROCESSING,
        created_at_us=now_us,
        updated_at_us=now_us,
        step=Step.HOLD,
    )


def same_payout_request(p: Payout, cmd: CreatePayout, tenant_id: str) -> bool:
    """True when `cmd` asks for exactly the payout already stored under its id."""
    return (
        p.tenant_id == tenant_id
        and p.account_id == cmd.account_id
        and p.amount == cmd.amount
        and p.currency == cmd.currency
    )


def payout_transfer(p: Payout) -> Transfer:
    """The ledger transfer of the payout's current ledger step."""
    base = Transfer(
        id=f"{p.id}:hold",
        debit_account_id=p.account_id,
        credit_account_id=funding_account_id(p.tenant_id, p.currency),
        amount=p.amount,
        currency=p.currency,
        code="payout",
        reference=p.id,
        kind=TransferKind.PENDING,
    )
    if p.step is Step.HOLD:
        return base
    if p.step is Step.POST:
        return dataclasses.replace(
            base, id=f"{p.id}:post", kind=TransferKind.POST_PENDING, pending_id=base.id
        )
    if p.step is Step.VOID:
        return dataclasses.replace(
            base,
            id=f"{p.id}:void",
            code="payout_reversal",
            kind=TransferKind.VOID_PENDING,
            pending_id=base.id,
        )
    raise ValueError(f"step {p.step} of payout {p.id} moves no money")


def apply_payout_ledger(p: Payout, result: str, now_us: int) -> PayoutTransition:
    """Apply the ledger's answer to the payout's hold, post or void."""
    done = result in ("ok", "exists")
    if p.step is Step.HOLD:
        if done:
            return _next(p, Step.BANK, now_us), ()
        return _fail(p, failure_code(result), now_us)
    if p.step is Step.POST:
        if done:
            succeeded = dataclasses.replace(_next(p, None, now_us), status=PayoutStatus.SUCCEEDED)
            return succeeded, (PAYOUT_SUCCEEDED,)
        return _fail(p, failure_code(result), now_us)
    if p.step is Step.VOID:
        # The hold is gone either way; the payout fails with the bank's code.
        return _fail(p, p.failure_code or failure_code(result), now_us)
    raise ValueError(f"payout {p.id} is at step {p.step}, not a ledger step")


def apply_payout_bank(p: Payout, answer: BankResult, now_us: int) -> PayoutTransition:
    """Apply the bank's answer about the push: post, void (compensate), or ask again later."""
    if p.step not in (Step.BANK, Step.BANK_STATUS):
        raise ValueError(f"payout {p.id} is at step {p.step}, not waiting for the bank")
    if answer.outcome is BankOutcome.SUCCEEDED:
        return _next(p, Step.POST, now_us), ()
    if answer.outcome is BankOutcome.FAILED:
        voiding = dataclasses.replace(
            _next(p, Step.VOID, now_us), failure_code=answer.code or "bank_failed"
        )
        return voiding, ()
    return _next(p, Step.BANK_STATUS, now_us), ()


def give_up_payout(p: Payout, now_us: int) -> PayoutTransition | None:
    """The step's deadline passed and it still fails transiently: give up if it is safe.

    Only the hold is given up: it may exist, so it is voided (never given up)
    and the payout fails with ``timeout``. Once the bank may have paid, the
    post is never given up (None).
    """
    if p.step is not Step.HOLD:
        return None
    return dataclasses.replace(_next(p, Step.VOID, now_us), failure_code=TIMEOUT), ()


def _next(p: Payout, step: Step | None, now_us: int) -> Payout:
    return dataclasses.replace(p, step=step, updated_at_us=now_us, attempts=0, next_attempt_at_us=0)


def _fail(p: Payout, code: str, now_us: int) -> PayoutTransition:
    failed = dataclasses.replace(
        _next(p, None, now_us), status=PayoutStatus.FAILED, failure_code=code
    )
    return failed, (PAYOUT_FAILED,)
