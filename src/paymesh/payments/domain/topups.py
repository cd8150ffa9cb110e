"""The top-up state machine: money in from the bank, through the tenant's funding account.

``bank`` (pull the money: idempotent by the top-up id) → ``transfer`` (credit
funding → account, ``{topup_id}:credit``) → ``succeeded``. The bank's
failure fails the top-up; an answer the bank did not give (a timeout) is
never guessed: the top-up waits at ``bank_status`` and asks the bank what
became of the pull until it knows.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum

from paymesh.contracts.events import TOPUP_FAILED, TOPUP_SUCCEEDED
from paymesh.payments.domain.common import (
    BankOutcome,
    BankResult,
    Step,
    Transfer,
    failure_code,
    validate_id,
    validate_money,
)
from paymesh.payments.errors import InvalidRequest

__all__ = [
    "CreateTopup",
    "Topup",
    "TopupStatus",
    "apply_topup_bank",
    "fail_topup",
    "funding_account_id",
    "new_topup",
    "same_topup_request",
    "settle_topup",
    "topup_transfer",
]


class TopupStatus(StrEnum):
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class CreateTopup:
    id: str
    account_id: str
    amount: int
    currency: str


@dataclass(frozen=True)
class Topup:
    id: str
    tenant_id: str
    account_id: str
    amount: int
    currency: str
    status: TopupStatus
    created_at_us: int
    updated_at_us: int
    failure_code: str = ""
    step: Step | None = None
    attempts: int = 0
    next_attempt_at_us: int = 0
    # When the step in progress was first recorded: its deadline counts from here.
    step_started_at_us: int = 0


def new_topup(cmd: CreateTopup, tenant_id: str, now_us: int) -> Topup:
    """A valid new top-up, ``processing``, with the bank pull to run first."""
    validate_id(cmd.id, "id")
    validate_money(cmd.amount, cmd.currency)
    if not cmd.account_id:
        raise InvalidRequest("account_id is required")
    return Topup(
        id=cmd.id,
        tenant_id=tenant_id,
        account_id=cmd.account_id,
        amount=cmd.amount,
        currency=cmd.currency,
        status=TopupStatus.PROCESSING,
        created_at_us=now_us,
        updated_at_us=now_us,
        step=Step.BANK,
    )


def same_topup_request(t: Topup, cmd: CreateTopup, tenant_id: str) -> bool:
    """True when `cmd` asks for exactly the top-up already stored under its id."""
    return (
        t.tenant_id == tenant_id
        and t.account_id == cmd.account_id
        and t.amount == cmd.amount
        and t.currency == cmd.currency
    )


def funding_account_id(tenant_id: str, currency: str) -> str:
    """The tenant's account standing for money outside the platform, per currency."""
    return f"acct_funding_{tenant_id}_{currency.lower()}"


def topup_transfer(t: Topup) -> Transfer:
    """The transfer that brings the money in: funding → account."""
    return Transfer(
        id=f"{t.id}:credit",
        debit_account_id=funding_account_id(t.tenant_id, t.currency),
        credit_account_id=t.account_id,
        amount=t.amount,
        currency=t.currency,
        code="topup",
        reference=t.id,
    )


def settle_topup(t: Topup, result: str, now_us: int) -> tuple[Topup, tuple[str, ...]]:
    """Apply the ledger's answer to the top-up transfer (ok/exists: succeeded)."""
    if result in ("ok", "exists"):
        done = dataclasses.replace(
            t, status=TopupStatus.SUCCEEDED, step=None, updated_at_us=now_us, attempts=0
        )
        return done, (TOPUP_SUCCEEDED,)
    failed = dataclasses.replace(
        t,
        status=TopupStatus.FAILED,
        failure_code=failure_code(result),
        step=None,
        updated_at_us=now_us,
        attempts=0,
    )
    return failed, (TOPUP_FAILED,)


def apply_topup_bank(t: Topup, answer: BankResult, now_us: int) -> tuple[Topup, tuple[str, ...]]:
    """Apply the bank's answer about the pull: credit next, fail, or ask again later."""
    if t.step not in (Step.BANK, Step.BANK_STATUS):
        raise ValueError(f"top-up {t.id} is at step {t.step}, not waiting for the bank")
    if answer.outcome is BankOutcome.SUCCEEDED:
        return _next(t, Step.TRANSFER, now_us), ()
    if answer.outcome is BankOutcome.FAILED:
        return fail_topup(t, answer.code or "bank_failed", now_us)
    return _next(t, Step.BANK_STATUS, now_us), ()


def fail_topup(t: Topup, code: str, now_us: int) -> tuple[Topup, tuple[str, ...]]:
    """The top-up fails for good with a stable code."""
    failed = dataclasses.replace(
        t, status=TopupStatus.FAILED, failure_code=code, step=None, updated_at_us=now_us, attempts=0
    )
    return failed, (TOPUP_FAILED,)


def _next(t: Topup, step: Step, now_us: int) -> Topup:
    return dataclasses.replace(t, step=step, updated_at_us=now_us, attempts=0, next_attempt_at_us=0)
