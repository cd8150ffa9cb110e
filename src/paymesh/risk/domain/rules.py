"""The risk rules, pure: a rule set evaluated against one payment and its features
gives a verdict.

A :class:`Rule` has an id, a condition (its kind and parameters), an action,
a reason code and a score. When its condition fires, the rule adds its score
and a :class:`Reason`. The outcome:

1. the strongest action among the fired rules (decline > review > approve; a
   ``score`` action only adds to the score), and the score, capped to 0..100;
2. the rule set's thresholds, if any: score >= ``review_at`` → at least review,
   score >= ``decline_at`` → decline;
3. an ``allow`` rule that fires (an allow-list match) approves with score 0 and
   only the allow reasons, overriding every other rule **except a hard decline**:
   a ``decline`` from a ``list`` rule (a block list) or an ``amount_limit`` rule.
   A hard decline stays a decline, with every reason that fired.

A rule may be limited to some tenants; elsewhere it is skipped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any, Protocol

from paymesh.risk.domain.features import (
    Dimension,
    FeatureNeeds,
    Features,
    ListField,
    dimension_value,
    list_field_value,
)
from paymesh.risk.domain.model import (
    MAX_SCORE,
    STRENGTH,
    DecidePayment,
    Decision,
    Outcome,
    Reason,
    Verdict,
    payment_facts,
    validate,
)

__all__ = [
    "DEFAULT_SCORES",
    "Action",
    "AmountLimit",
    "AmountZScore",
    "Condition",
    "CountryMismatch",
    "ListMatch",
    "NewAccount",
    "Rule",
    "RuleSet",
    "Thresholds",
    "Velocity",
    "amount_limit_rules",
    "decide",
    "evaluate",
]

_VERSION_CHARS = 12


class Action(StrEnum):
    """What a rule does when it fires."""

    DECLINE = "decline"
    REVIEW = "review"
    SCORE = "score"
    ALLOW = "allow"


_ACTION_OUTCOME = {
    Action.DECLINE: Outcome.DECLINE,
    Action.REVIEW: Outcome.REVIEW,
    Action.SCORE: Outcome.APPROVE,
    Action.ALLOW: Outcome.APPROVE,
}
# Score added by a firing rule whose configuration names none.
DEFAULT_SCORES = {Action.DECLINE: MAX_SCORE, Action.REVIEW: 50, Action.SCORE: 10, Action.ALLOW: 0}


class Condition(Protocol):
    """The kind-specific part of a rule: when it fires, what it reads, its configuration."""

    @property
    def kind(self) -> str: ...

    def fires(self, payment: DecidePayment, features: Features) -> str | None:
        """A message when the condition holds for `payment`, else None."""
        ...

    def needs(self) -> FeatureNeeds:
        """The features it reads."""
        ...

    def config(self) -> dict[str, Any]:
        """The parameters, JSON-ready."""
        ...


_NOTHING = FeatureNeeds()


def _limits(pairs: tuple[tuple[str, int], ...]) -> dict[str, int]:
    return dict(sorted(pairs))


@dataclass(frozen=True)
class AmountLimit:
    """Fires when the amount is over its currency's limit (equal is allowed); a
    currency without a limit and without ``default_limit`` is not limited."""

    limits: tuple[tuple[str, int], ...]
    default_limit: int | None = None

    @property
    def kind(self) -> str:
        return "amount_limit"

    def limit_for(self, currency: str) -> int | None:
        """The limit in minor units for `currency`, if any."""
        return dict(self.limits).get(currency, self.default_limit)

    def fires(self, payment: DecidePayment, features: Features) -> str | None:
        limit = self.limit_for(payment.currency)
        if limit is not None and payment.amount > limit:
            return f"amount {payment.amount} {payment.currency} is over the limit {limit}"
        return None

    def needs(self) -> FeatureNeeds:
        return _NOTHING

    def config(self) -> dict[str, Any]:
        return {"limits": _limits(self.limits), "default_limit": self.default_limit}


@dataclass(frozen=True)
class Velocity:
    """Fires when this payment would make its window exceed a maximum: the entries
    already in the window plus this one are more than ``max_count``, or their sum
    in this payment's currency plus this amount is more than ``max_sum[currency]``.
    With ``max_count: 3`` the third payment in the window passes, the fourth fires.
    A payment without a value for the dimension (no device, no IP) never fires."""

    dimension: Dimension
    window_s: int
    max_count: int | None = None
    max_sum: tuple[tuple[str, int], ...] = ()

    @property
    def kind(self) -> str:
        return "velocity"

    def fires(self, payment: DecidePayment, features: Features) -> str | None:
        if not dimension_value(payment, self.dimension):
            return None
        stats = features.window(self.dimension, self.window_s)
        where = f"{self.dimension.value} in {self.window_s}s"
        if self.max_count is not None and stats.count + 1 > self.max_count:
            return f"{stats.count + 1} payments by {where}, more than {self.max_count}"
        limit = dict(self.max_sum).get(payment.currency)
        if limit is not None and stats.amount + payment.amount > limit:
            total = stats.amount + payment.amount
            return f"{total} {payment.currency} by {where}, more than {limit}"
        return None

    def needs(self) -> FeatureNeeds:
        return FeatureNeeds(windows=frozenset({(self.dimension, self.window_s)}))

    def config(self) -> dict[str, Any]:
        return {
            "dimension": self.dimension.value,
            "window_s": self.window_s,
            "max_count": self.max_count,
            "max_sum": _limits(self.max_sum),
        }


@dataclass(frozen=True)
class ListMatch:
    """Fires when the payment's ``field`` is an entry of the tenant's list ``list_name``."""

    field: ListField
    list_name: str

    @property
    def kind(self) -> str:
        return "list"

    def fires(self, payment: DecidePayment, features: Features) -> str | None:
        value = list_field_value(payment, self.field)
        if value and (self.list_name, value) in features.lists:
            return f"{self.field.value} {value} is in the list {self.list_name}"
        return None

    def needs(self) -> FeatureNeeds:
        return FeatureNeeds(lists=frozenset({(self.list_name, self.field)}))

    def config(self) -> dict[str, Any]:
        return {"field": self.field.value, "list": self.list_name}


@dataclass(frozen=True)
class NewAccount:
    """Fires when the payer is new and the amount is over ``max_amount[currency]``.

    A payer is new when risk knows no succeeded payment of theirs, or (with
    ``max_age_s``) their first succeeded payment is less than ``max_age_s`` old,
    or (with ``min_payments``) they have fewer than ``min_payments`` succeeded
    payments. A currency without a maximum never fires.
    """

    max_amount: tuple[tuple[str, int], ...]
    max_age_s: int | None = None
    min_payments: int | None = None

    @property
    def kind(self) -> str:
        return "new_account"

    def is_new(self, features: Features) -> bool:
        """Whether the payer counts as new."""
        payer = features.payer
        if payer is None or payer.succeeded_count == 0:
            return True
        young = (
            self.max_age_s is not None
            and features.now_us - payer.first_seen_us < self.max_age_s * 1_000_000
        )
        few = self.min_payments is not None and payer.succeeded_count < self.min_payments
        return young or few

    def fires(self, payment: DecidePayment, features: Features) -> str | None:
        limit = dict(self.max_amount).get(payment.currency)
        if limit is None or payment.amount <= limit or not self.is_new(features):
            return None
        return f"new payer, amount {payment.amount} {payment.currency} over {limit}"

    def needs(self) -> FeatureNeeds:
        return FeatureNeeds(payer=True)

    def config(self) -> dict[str, Any]:
        return {
            "max_amount": _limits(self.max_amount),
            "max_age_s": self.max_age_s,
            "min_payments": self.min_payments,
        }


@dataclass(frozen=True)
class CountryMismatch:
    """Fires when the payment's country differs from the payer's usual country (the
    most frequent country of their succeeded payments). No history, or no country
    on the payment, does not fire."""

    @property
    def kind(self) -> str:
        return "country_mismatch"

    def fires(self, payment: DecidePayment, features: Features) -> str | None:
        country = payment.context.country
        usual = features.payer.usual_country if features.payer else ""
        if country and usual and country != usual:
            return f"country {country} is not the payer's usual {usual}"
        return None

    def needs(self) -> FeatureNeeds:
        return FeatureNeeds(payer=True)

    def config(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class AmountZScore:
    """Fires when the amount is more than ``z`` standard deviations above the payer's
    mean in this currency, once they have at least ``min_history`` succeeded
    payments in it. The deviation is floored at one minor unit, so a payer who
    always paid the same amount is flagged by any larger one."""

    z: float
    min_history: int

    @property
    def kind(self) -> str:
        return "amount_zscore"

    def fires(self, payment: DecidePayment, features: Features) -> str | None:
        stats = features.payer.amounts if features.payer else None
        if stats is None or stats.count < self.min_history:
            return None
        score = (payment.amount - stats.mean) / max(stats.stddev, 1.0)
        if score > self.z:
            return f"amount is {score:.1f} standard deviations above the payer's mean"
        return None

    def needs(self) -> FeatureNeeds:
        return FeatureNeeds(payer=True)

    def config(self) -> dict[str, Any]:
        return {"z": self.z, "min_history": self.min_history}


_HARD_KINDS = frozenset({"list", "amount_limit"})


@dataclass(frozen=True)
class Rule:
    """One rule: an id, a condition, what to do when it fires, and why."""

    id: str
    condition: Condition
    action: Action
    reason_code: str
    # Points added to the score when the rule fires.
    score: int = MAX_SCORE
    description: str = ""
    # Only for these tenants; empty = every tenant.
    tenants: frozenset[str] = frozenset()

    @property
    def kind(self) -> str:
        """The condition's kind, e.g. ``amount_limit``."""
        return self.condition.kind

    @property
    def hard(self) -> bool:
        """A decline that an allow-list match does not override."""
        return self.action is Action.DECLINE and self.kind in _HARD_KINDS

    def applies_to(self, tenant_id: str) -> bool:
        """Whether the rule is evaluated for `tenant_id`."""
        return not self.tenants or tenant_id in self.tenants

    def config(self) -> dict[str, Any]:
        """Everything that defines this rule, JSON-ready."""
        return {
            "id": self.id,
            "kind": self.kind,
            "action": self.action.value,
            "reason_code": self.reason_code,
            "score": self.score,
            "tenants": sorted(self.tenants),
            "params": self.condition.config(),
        }


@dataclass(frozen=True)
class Thresholds:
    """Outcomes from the total score; None = not used."""

    review_at: int | None = None
    decline_at: int | None = None


@dataclass(frozen=True)
class RuleSet:
    """The rules in force, in evaluation order, and where they came from."""

    rules: tuple[Rule, ...]
    thresholds: Thresholds = field(default_factory=Thresholds)
    # The version the rules file declares ("" = the checksum's prefix).
    label: str = ""
    # sha256 hex of the rules file's content ("" = of the canonical configuration).
    content_checksum: str = ""

    @cached_property
    def checksum(self) -> str:
        """sha256 (hex) of the file content, or of the canonical configuration."""
        if self.content_checksum:
            return self.content_checksum
        canonical = json.dumps(
            {
                "rules": [r.config() for r in self.rules],
                "thresholds": [self.thresholds.review_at, self.thresholds.decline_at],
            },
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def version(self) -> str:
        """The declared version, or a short, stable prefix of the checksum."""
        return self.label or self.checksum[:_VERSION_CHARS]

    @cached_property
    def needs(self) -> FeatureNeeds:
        """Every feature some rule reads."""
        parts = [r.condition.needs() for r in self.rules]
        return FeatureNeeds(
            windows=frozenset().union(*(p.windows for p in parts)),
            payer=any(p.payer for p in parts),
            lists=frozenset().union(*(p.lists for p in parts)),
        )


def evaluate(rules: RuleSet, payment: DecidePayment, features: Features | None = None) -> Verdict:
    """Run every rule on `payment`; see the module docstring for the precedence."""
    features = features or Features()
    outcome = Outcome.APPROVE
    score = 0
    reasons: list[Reason] = []
    allows: list[Reason] = []
    hard = False
    for rule in rules.rules:
        if not rule.applies_to(payment.tenant_id):
            continue
        message = rule.condition.fires(payment, features)
        if message is None:
            continue
        reason = Reason(code=rule.reason_code, rule_id=rule.id, message=message)
        reasons.append(reason)
        if rule.action is Action.ALLOW:
            allows.append(reason)
            continue
        hard = hard or rule.hard
        score += rule.score
        fired = _ACTION_OUTCOME[rule.action]
        if STRENGTH[fired] > STRENGTH[outcome]:
            outcome = fired
    score = max(0, min(MAX_SCORE, score))
    outcome = _apply_thresholds(rules.thresholds, score, outcome)
    if allows and not hard:
        return Verdict(outcome=Outcome.APPROVE, score=0, reasons=tuple(allows))
    return Verdict(outcome=outcome, score=score, reasons=tuple(reasons))


def _apply_thresholds(thresholds: Thresholds, score: int, outcome: Outcome) -> Outcome:
    by_score = Outcome.APPROVE
    if thresholds.decline_at is not None and score >= thresholds.decline_at:
        by_score = Outcome.DECLINE
    elif thresholds.review_at is not None and score >= thresholds.review_at:
        by_score = Outcome.REVIEW
    return by_score if STRENGTH[by_score] > STRENGTH[outcome] else outcome


def decide(
    rules: RuleSet, payment: DecidePayment, *, now_us: int, features: Features | None = None
) -> Decision:
    """Validate `payment` and decide on it with `rules` and `features`."""
    validate(payment)
    verdict = evaluate(rules, payment, features)
    return Decision(
        **payment_facts(payment),
        outcome=verdict.outcome,
        score=verdict.score,
        reasons=verdict.reasons,
        rules_version=rules.version,
        decided_at_us=now_us,
        rules_checksum=rules.checksum,
    )


def amount_limit_rules(limits: Mapping[str, int], default_limit: int) -> RuleSet:
    """The built-in rule set from settings: decline an amount over its currency's limit."""
    condition = AmountLimit(limits=tuple(sorted(limits.items())), default_limit=default_limit)
    rule = Rule(
        id="amount_limit",
        condition=condition,
        action=Action.DECLINE,
        reason_code="amount_over_limit",
    )
    return RuleSet(rules=(rule,))
