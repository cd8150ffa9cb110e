"""The risk rules, pure: a rule set evaluated against one payment gives a decision.

A :class:`Rule` has an id, a condition (its kind and parameters), an action
and a reason code. When its condition fires, the rule adds its score and a
:class:`Reason`; the outcome is the strongest action among the fired rules
(decline > review > approve; a ``score`` action only adds to the score).

The rule set's ``version`` is a checksum of its configuration, so a decision
records exactly which rules made it and the same configuration always gives
the same version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from paymesh.platform.money import is_valid_amount, is_valid_currency
from paymesh.risk.errors import InvalidRequest

__all__ = [
    "MAX_SCORE",
    "Action",
    "AmountLimit",
    "Condition",
    "DecidePayment",
    "Decision",
    "Outcome",
    "PayerStats",
    "PaymentContext",
    "Reason",
    "Rule",
    "RuleSet",
    "SucceededPayment",
    "Verdict",
    "amount_limit_rules",
    "decide",
    "evaluate",
    "validate",
]

MAX_SCORE = 100
_VERSION_CHARS = 12


class Outcome(StrEnum):
    """What risk says about a payment."""

    APPROVE = "approve"
    REVIEW = "review"
    DECLINE = "decline"


class Action(StrEnum):
    """What a rule does when it fires."""

    DECLINE = "decline"
    REVIEW = "review"
    SCORE = "score"


_STRENGTH = {Outcome.APPROVE: 0, Outcome.REVIEW: 1, Outcome.DECLINE: 2}
_ACTION_OUTCOME = {
    Action.DECLINE: Outcome.DECLINE,
    Action.REVIEW: Outcome.REVIEW,
    Action.SCORE: Outcome.APPROVE,
}


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


class Condition(Protocol):
    """The kind-specific part of a rule: when it fires, and its configuration."""

    @property
    def kind(self) -> str: ...

    def fires(self, payment: DecidePayment) -> str | None:
        """A message when the condition holds for `payment`, else None."""
        ...

    def config(self) -> dict[str, Any]:
        """The parameters, JSON-ready, for the rule set's version."""
        ...


@dataclass(frozen=True)
class AmountLimit:
    """Fires when the amount is over the limit for its currency (equal is allowed)."""

    limits: tuple[tuple[str, int], ...]
    default_limit: int

    @property
    def kind(self) -> str:
        return "amount_limit"

    def limit_for(self, currency: str) -> int:
        """The limit in minor units for `currency`."""
        return dict(self.limits).get(currency, self.default_limit)

    def fires(self, payment: DecidePayment) -> str | None:
        limit = self.limit_for(payment.currency)
        if payment.amount > limit:
            return f"amount {payment.amount} {payment.currency} is over the limit {limit}"
        return None

    def config(self) -> dict[str, Any]:
        return {"limits": dict(sorted(self.limits)), "default_limit": self.default_limit}


@dataclass(frozen=True)
class Rule:
    """One rule: an id, a condition, what to do when it fires, and why."""

    id: str
    condition: Condition
    action: Action
    reason_code: str
    # Points added to the score when the rule fires.
    score: int = MAX_SCORE

    @property
    def kind(self) -> str:
        """The condition's kind, e.g. ``amount_limit``."""
        return self.condition.kind

    def config(self) -> dict[str, Any]:
        """Everything that defines this rule, JSON-ready."""
        return {
            "id": self.id,
            "kind": self.kind,
            "action": self.action.value,
            "reason_code": self.reason_code,
            "score": self.score,
            "params": self.condition.config(),
        }


@dataclass(frozen=True)
class RuleSet:
    """The rules in force, in evaluation order."""

    rules: tuple[Rule, ...]

    @property
    def version(self) -> str:
        """A short, stable checksum of the configuration (sha256 hex prefix)."""
        canonical = json.dumps(
            [r.config() for r in self.rules], sort_keys=True, separators=(",", ":")
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:_VERSION_CHARS]


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


def amount_limit_rules(limits: Mapping[str, int], default_limit: int) -> RuleSet:
    """The rule set with one rule: decline an amount over its currency's limit."""
    condition = AmountLimit(limits=tuple(sorted(limits.items())), default_limit=default_limit)
    rule = Rule(
        id="amount_limit",
        condition=condition,
        action=Action.DECLINE,
        reason_code="amount_over_limit",
    )
    return RuleSet(rules=(rule,))


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


def evaluate(rules: RuleSet, payment: DecidePayment) -> Verdict:
    """Run every rule on `payment`; the strongest fired action wins."""
    outcome = Outcome.APPROVE
    score = 0
    reasons: list[Reason] = []
    for rule in rules.rules:
        message = rule.condition.fires(payment)
        if message is None:
            continue
        reasons.append(Reason(code=rule.reason_code, rule_id=rule.id, message=message))
        score += rule.score
        fired = _ACTION_OUTCOME[rule.action]
        if _STRENGTH[fired] > _STRENGTH[outcome]:
            outcome = fired
    return Verdict(outcome=outcome, score=max(0, min(MAX_SCORE, score)), reasons=tuple(reasons))


def decide(rules: RuleSet, payment: DecidePayment, *, now_us: int) -> Decision:
    """Validate `payment` and decide on it with `rules`."""
    validate(payment)
    verdict = evaluate(rules, payment)
    return Decision(
        payment_id=payment.payment_id,
        tenant_id=payment.tenant_id,
        payer_account_id=payment.payer_account_id,
        payee_account_id=payment.payee_account_id,
        amount=payment.amount,
        currency=payment.currency,
        outcome=verdict.outcome,
        score=verdict.score,
        reasons=verdict.reasons,
        rules_version=rules.version,
        decided_at_us=now_us,
    )


# --- history features: what a payer has done before -------------------------


@dataclass(frozen=True)
class SucceededPayment:
    """A payment that succeeded, as the history features see it (from its event)."""

    payment_id: str
    tenant_id: str
    payer_account_id: str
    currency: str
    # What actually moved: the captured amount, in minor units.
    amount: int
    at_us: int


@dataclass(frozen=True)
class PayerStats:
    """One payer's succeeded payments in one currency."""

    tenant_id: str
    payer_account_id: str
    currency: str
    succeeded_count: int
    succeeded_amount: int
    last_event_at_us: int
