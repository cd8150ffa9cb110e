"""What every saga shares: steps, the saga object, ledger transfers, validation, failure codes,
backoff."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

from paymesh.payments.errors import (
    AccountNotFound,
    CurrencyMismatch,
    InvalidRequest,
    PlatformAccount,
)
from paymesh.platform.money import MAX_AMOUNT, is_valid_amount, is_valid_currency

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = [
    "FAILURE_LABELS",
    "PLATFORM_CODES",
    "TIMEOUT",
    "BankOutcome",
    "BankResult",
    "SagaObject",
    "Step",
    "Transfer",
    "TransferKind",
    "advance",
    "check_accounts",
    "failure_code",
    "failure_label",
    "new_saga_object",
    "retry_delay_s",
    "same_request",
    "step_deadline_passed",
    "validate_id",
    "validate_money",
    "validate_pair",
]

# Ids travel into ledger transfer ids (``<id>:capture``) and event ids.
_ID = re.compile(r"^[A-Za-z0-9_-]{1,48}$")


class Step(StrEnum):
    """A saga step in progress."""

    RISK = "risk"
    HOLD = "hold"
    CAPTURE = "capture"
    VOID = "void"
    # Refunds, transfers and top-up credits: a single step that moves the money.
    TRANSFER = "transfer"
    # Payouts and top-ups: ask the bank to move the money, then (when its
    # answer was lost) ask it what became of the request until it knows.
    BANK = "bank"
    BANK_STATUS = "bank_status"
    # Payouts: post the hold once the bank has paid.
    POST = "post"
    # A transfer whose outcome is unknown after the step's deadline: it is never
    # sent again; the ledger is asked (LookupTransfers) whether it happened.
    LOOKUP = "lookup"


# The failure code of a step given up after its deadline.
TIMEOUT = "timeout"


@dataclass(frozen=True, kw_only=True)
class SagaObject:
    """What every flow's object carries: its ids, its money, its times and its saga step.

    Each flow's object adds its own fields and its ``status``.
    """

    id: str
    tenant_id: str
    amount: int
    currency: str
    created_at_us: int
    updated_at_us: int
    failure_code: str = ""
    # The saga: the step in progress (None: nothing to do) and its retry bookkeeping.
    step: Step | None = None
    attempts: int = 0
    next_attempt_at_us: int = 0
    # When the step in progress was first recorded: its deadline counts from here.
    step_started_at_us: int = 0


S = TypeVar("S", bound=SagaObject)


def advance(obj: S, now_us: int, **changes: Any) -> S:
    """`obj` after a transition made `changes`: the retry bookkeeping starts afresh."""
    return dataclasses.replace(
        obj, updated_at_us=now_us, attempts=0, next_attempt_at_us=0, **changes
    )


def new_saga_object(
    cls: type[S], cmd: DataclassInstance, tenant_id: str, now_us: int, first: Step, **more: Any
) -> S:
    """A new `cls` of the tenant from `cmd` (its fields, by name) and `more`, at step `first`."""
    fields = {f.name: getattr(cmd, f.name) for f in dataclasses.fields(cmd)}
    return cls(
        **(fields | more),
        tenant_id=tenant_id,
        created_at_us=now_us,
        updated_at_us=now_us,
        step=first,
    )


def same_request(obj: SagaObject, cmd: DataclassInstance, tenant_id: str) -> bool:
    """True when `cmd` asks for exactly `obj`: the tenant's, every field but the id as stored."""
    return obj.tenant_id == tenant_id and all(
        getattr(obj, f.name) == getattr(cmd, f.name)
        for f in dataclasses.fields(cmd)
        if f.name != "id"
    )


class TransferKind(StrEnum):
    SINGLE = "single"
    PENDING = "pending"
    POST_PENDING = "post_pending"
    VOID_PENDING = "void_pending"


@dataclass(frozen=True)
class Transfer:
    """A ledger transfer a saga step asks for; its id is derived from the step."""

    id: str
    debit_account_id: str
    credit_account_id: str
    amount: int
    currency: str
    code: str
    reference: str
    kind: TransferKind = TransferKind.SINGLE
    pending_id: str = ""
    # Chained to the next transfer of the batch: both happen or neither.
    linked: bool = False
    # For a pending transfer: the ledger voids it after this many seconds (0: never).
    timeout_seconds: int = 0


class BankOutcome(StrEnum):
    """What became of a request to the bank: known, or not (yet)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    # The answer was lost or the bank has not decided: never guessed, asked again.
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class BankResult:
    """The bank's answer about one request (by its reference)."""

    outcome: BankOutcome
    code: str = ""


def validate_id(value: str, what: str) -> None:
    """Refuse an id that is empty, too long or has characters outside [A-Za-z0-9_-]."""
    if not _ID.match(value):
        raise InvalidRequest(f"{what} must be 1-48 characters of A-Z, a-z, 0-9, _ or -")


def validate_money(amount: int, currency: str) -> None:
    """Refuse a non-positive or too large amount, or an unknown currency."""
    if not is_valid_amount(amount):
        raise InvalidRequest(f"amount must be between 1 and {MAX_AMOUNT}")
    if not is_valid_currency(currency):
        raise InvalidRequest(f"unknown currency {currency!r}")


def validate_pair(roles: tuple[str, str], account_ids: tuple[str, str]) -> None:
    """Refuse a command missing one of its two accounts, or naming one account twice.

    `roles` name the accounts in the answer ("payer", "payee").
    """
    first, second = roles
    if not all(account_ids):
        raise InvalidRequest(f"{first}_account_id and {second}_account_id are required")
    if account_ids[0] == account_ids[1]:
        raise InvalidRequest(f"{first} and {second} must be different accounts")


# The codes of the accounts the platform keeps for a tenant (money outside the platform,
# fees, reconciliation write-offs): moved only by the platform's own transfers.
PLATFORM_CODES = frozenset({"funding", "revenue", "suspense"})


def check_accounts(
    named: Mapping[str, str],
    currency: str,
    found: Mapping[str, str],
    codes: Mapping[str, str] | None = None,
) -> None:
    """Refuse a command naming an account the tenant lacks, one in another currency, or
    one of the platform's own accounts (`codes`: each found account's code).

    `named` maps each field of the command to the account id it names;
    `found` maps each of the tenant's accounts among them to its currency. An
    unknown id and another tenant's account are both absent from `found`, and
    the answer names the field, not the id, so the two are told apart by nothing.
    """
    missing = [field for field, account_id in named.items() if account_id not in found]
    if missing:
        raise AccountNotFound(f"no such account: {', '.join(missing)}")
    for field, account_id in named.items():
        if (codes or {}).get(account_id) in PLATFORM_CODES:
            raise PlatformAccount(
                f"{field}: a platform account (funding, revenue or suspense) is moved only by"
                " the platform itself"
            )
    for field, account_id in named.items():
        if found[account_id] != currency:
            raise CurrencyMismatch(
                f"{field}: the account holds {found[account_id]}, the request is in {currency}"
            )


_FAILURE_CODES = {
    "exceeds_credits": "insufficient_funds",
    "debit_account_not_found": "account_not_found",
    "credit_account_not_found": "account_not_found",
    "currency_mismatch": "currency_mismatch",
}


def failure_code(result: str) -> str:
    """The payment's failure code for a ledger (or remote) refusal."""
    return _FAILURE_CODES.get(result, result.lower())


# The failure codes a metric names as they are: the domain's own constants and the
# ledger refusals a saga meets in practice. Any other code (a rarer ledger result, a
# bank's own code, a gRPC status) counts as "other", so the label stays bounded.
FAILURE_LABELS = frozenset(
    {
        "",
        TIMEOUT,
        "risk_declined",
        "authorization_expired",
        "bank_failed",
        "bank_declined",
        "unknown_reference",
        *_FAILURE_CODES.values(),
        "exceeds_debits",
        "pending_transfer_expired",
        "amount_too_large",
        "overflow",
        "tenant_mismatch",
        "pending_transfer_not_found",
    }
)


def failure_label(code: str) -> str:
    """`code` as a metric label: itself when it is one of :data:`FAILURE_LABELS`, else "other"."""
    return code if code in FAILURE_LABELS else "other"


def retry_delay_s(attempts: int, base_s: float, max_s: float) -> float:
    """Exponential backoff for the `attempts`-th failed run of a step."""
    return float(min(max_s, base_s * 2 ** max(0, attempts - 1)))


def step_deadline_passed(obj: SagaObject, now_us: int, deadline_s: float) -> bool:
    """True when the step in progress was first recorded `deadline_s` or more ago.

    A row recorded before the step's start was kept (``step_started_at_us``
    0) counts from its last update.
    """
    if obj.step is None or deadline_s <= 0:
        return False
    started = obj.step_started_at_us or obj.updated_at_us
    return now_us >= started + int(deadline_s * 1_000_000)
