"""Payments as risk sees them, and the decisions made on them (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from paymesh.platform.money import is_valid_amount, is_valid_currency
from paymesh.risk.errors import InvalidRequest

__all__ = [
    "DECISION_VALUES",
    "MAX_SCORE",
    "DecidePayment",
    "Decision",
    "Outcome",
    "PaymentContext",
    "Reason",
    "Verdict",
    "payment_facts",
    "validate",
]

MAX_SCORE = 100


class Outcome(StrEnum):
    """What risk says about a payment."""

    APPROVE = "approve"
    REVIEW = "review"
    DECLINE = "decline"


STRENGTH = {Outcome.APPROVE: 0, Outcome.REVIEW: 1, Outcome.DECLINE: 2}


@dataclass(frozen=True)
class PaymentContext:
    """Where a payment comes from; empty strings when unknown."""

    ip: str = ""
    device_id: str = ""
    country: str = ""


@dataclass(frozen=True)
class DecidePayment:
    """Command: decide on one payment (the facts the rules look at)."""

    payment_id: str
    tenant_id: str
    payer_account_id: str
    payee_account_id: str
    amount: int
    currency: str
    context: PaymentContext = field(default_factory=PaymentContext)


@dataclass(frozen=True)
class Reason:
    """Why a rule fired: a stable code, the rule, words for a human."""

    code: str
    rule_id: str
    message: str


@dataclass(frozen=True)
class Verdict:
    """What the rules say: an outcome, a score 0-100 and the reasons."""

    outcome: Outcome
    score: int
    reasons: tuple[Reason, ...]


@dataclass(frozen=True)
class Decision:
    """A decision made for one payment, with the facts it was made on."""

    payment_id: str
    tenant_id: str
    payer_account_id: str
    payee_account_id: str
    amount: int
    currency: str
    outcome: Outcome
    score: int
    reasons: tuple[Reason, ...]
    rules_version: str
    decided_at_us: int
    # sha256 (hex) of the rules (file content, or canonical settings) that decided.
    rules_checksum: str = ""
    context: PaymentContext = field(default_factory=PaymentContext)

    def payment(self) -> DecidePayment:
        """The facts the decision was made on."""
        return DecidePayment(**payment_facts(self))


# The fields of a decision that hold plain values (rows and messages copy them as they are).
DECISION_VALUES = tuple(
    f.name for f in fields(Decision) if f.name not in ("outcome", "reasons", "context")
)


def payment_facts(source: object) -> dict[str, Any]:
    """The facts a payment is decided on (the fields of :class:`DecidePayment`), read by
    name from `source`: a command, a decision, or anything else that carries them."""
    return {f.name: getattr(source, f.name) for f in fields(DecidePayment)}


def validate(payment: DecidePayment) -> None:
    """Refuse a malformed request (raises InvalidRequest)."""
    if not payment.payment_id:
        raise InvalidRequest("payment_id is required")
    if not payment.tenant_id:
        raise InvalidRequest("tenant_id is required")
    if not is_valid_amount(payment.amount):
        raise InvalidRequest(f"amount must be a positive integer, got {payment.amount}")
    if not is_valid_currency(payment.currency):
        raise InvalidRequest(f"unknown currency {payment.currency!r}")
