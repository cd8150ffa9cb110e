"""The risk rules: amount limits per currency, outcomes, scores and the rules version."""

from __future__ import annotations

import pytest

from paymesh.risk.domain import (
    Action,
    AmountLimit,
    DecidePayment,
    Outcome,
    Rule,
    RuleSet,
    amount_limit_rules,
    decide,
    evaluate,
)
from paymesh.risk.errors import InvalidRequest

RULES = amount_limit_rules({"USD": 10_000, "JPY": 500}, default_limit=1_000)


def payment(amount: int, currency: str = "USD", payment_id: str = "pay_1") -> DecidePayment:
    return DecidePayment(
        payment_id=payment_id,
        tenant_id="ten_1",
        payer_account_id="acct_a",
        payee_account_id="acct_b",
        amount=amount,
        currency=currency,
    )


def test_an_amount_equal_to_the_limit_is_approved_with_score_zero() -> None:
    verdict = evaluate(RULES, payment(10_000))
    assert verdict.outcome is Outcome.APPROVE
    assert verdict.score == 0
    assert verdict.reasons == ()


def test_an_amount_one_over_the_limit_is_declined_with_score_100_and_a_reason() -> None:
    verdict = evaluate(RULES, payment(10_001))
    assert verdict.outcome is Outcome.DECLINE
    assert verdict.score == 100
    [reason] = verdict.reasons
    assert reason.code == "amount_over_limit"
    assert reason.rule_id == "amount_limit"
    assert "10001" in reason.message


def test_each_currency_uses_its_own_limit() -> None:
    assert evaluate(RULES, payment(500, "JPY")).outcome is Outcome.APPROVE
    assert evaluate(RULES, payment(501, "JPY")).outcome is Outcome.DECLINE
    assert evaluate(RULES, payment(5_000, "USD")).outcome is Outcome.APPROVE


def test_a_currency_without_its_own_limit_uses_the_default_limit() -> None:
    assert evaluate(RULES, payment(1_000, "EUR")).outcome is Outcome.APPROVE
    assert evaluate(RULES, payment(1_001, "EUR")).outcome is Outcome.DECLINE


def test_the_same_configuration_gives_the_same_short_rules_version() -> None:
    again = amount_limit_rules({"JPY": 500, "USD": 10_000}, default_limit=1_000)
    assert RULES.version == again.version
    assert len(RULES.version) == 12
    int(RULES.version, 16)  # a hex prefix


def test_changing_a_limit_or_the_default_changes_the_rules_version() -> None:
    other_limit = amount_limit_rules({"USD": 10_001, "JPY": 500}, default_limit=1_000)
    other_default = amount_limit_rules({"USD": 10_000, "JPY": 500}, default_limit=1_001)
    assert len({RULES.version, other_limit.version, other_default.version}) == 3


def test_a_review_rule_asks_for_review_and_a_decline_rule_outranks_it() -> None:
    review = Rule(
        id="big_review",
        condition=AmountLimit(limits=(), default_limit=100),
        action=Action.REVIEW,
        reason_code="amount_needs_review",
        score=40,
    )
    decline = Rule(
        id="huge_decline",
        condition=AmountLimit(limits=(), default_limit=1_000),
        action=Action.DECLINE,
        reason_code="amount_over_limit",
    )
    rules = RuleSet(rules=(review, decline))
    middle = evaluate(rules, payment(500, "EUR"))
    assert (middle.outcome, middle.score) == (Outcome.REVIEW, 40)
    high = evaluate(rules, payment(5_000, "EUR"))
    assert (high.outcome, high.score) == (Outcome.DECLINE, 100)
    assert [r.rule_id for r in high.reasons] == ["big_review", "huge_decline"]


def test_a_decision_records_the_facts_the_rules_version_and_the_time() -> None:
    decision = decide(RULES, payment(10_001), now_us=42)
    assert decision.outcome is Outcome.DECLINE
    assert decision.rules_version == RULES.version
    assert decision.decided_at_us == 42
    assert (decision.amount, decision.currency) == (10_001, "USD")


@pytest.mark.parametrize(
    ("cmd", "words"),
    [
        (payment(100, payment_id=""), "payment_id"),
        (payment(0), "amount"),
        (payment(-5), "amount"),
        (payment(100, "XXX"), "currency"),
        (payment(100, "usd"), "currency"),
    ],
)
def test_a_malformed_request_is_refused(cmd: DecidePayment, words: str) -> None:
    with pytest.raises(InvalidRequest, match=words) as exc:
        decide(RULES, cmd, now_us=1)
    assert exc.value.code == "invalid_request"
