"""Every rule kind fires just past its boundary and not at it; the precedence of
decline, review, score thresholds and allow-list matches."""

from __future__ import annotations

from dataclasses import replace

import pytest

from paymesh.risk.domain import (
    Action,
    AmountLimit,
    AmountStats,
    AmountZScore,
    CountryMismatch,
    DecidePayment,
    Dimension,
    Features,
    ListField,
    ListMatch,
    NewAccount,
    Outcome,
    PayerHistory,
    PaymentContext,
    Rule,
    RuleSet,
    Thresholds,
    Velocity,
    WindowStats,
    evaluate,
    welford,
)

NOW = 1_800_000_000_000_000
DAY_US = 86_400_000_000


def payment(amount: int = 1_000, currency: str = "USD", **ctx: str) -> DecidePayment:
    context = PaymentContext(**{"ip": "192.0.2.1", "device_id": "dev_1", "country": "US", **ctx})
    return DecidePayment("pay_1", "ten_1", "acct_a", "acct_b", amount, currency, context)


def fired(condition: object, p: DecidePayment, features: Features | None = None) -> bool:
    rule = Rule(id="r", condition=condition, action=Action.DECLINE, reason_code="x")  # type: ignore[arg-type]
    return evaluate(RuleSet(rules=(rule,)), p, features).outcome is Outcome.DECLINE


def window(dimension: Dimension, seconds: int, count: int, amount: int = 0) -> Features:
    return Features(now_us=NOW, windows={(dimension, seconds): WindowStats(count, amount)})


# --- amount_limit ----------------------------------------------------------------


def test_an_amount_limit_fires_one_over_and_not_at_the_limit() -> None:
    limit = AmountLimit(limits=(("USD", 5_000),))
    assert not fired(limit, payment(5_000))
    assert fired(limit, payment(5_001))
    assert not fired(limit, payment(10**9, "EUR"))  # no limit for EUR, no default


def test_an_amount_limit_rule_for_some_tenants_skips_the_others() -> None:
    rule = Rule(
        id="r",
        condition=AmountLimit(limits=(("USD", 10),)),
        action=Action.DECLINE,
        reason_code="x",
        tenants=frozenset({"ten_2"}),
    )
    rules = RuleSet(rules=(rule,))
    assert evaluate(rules, payment(11)).outcome is Outcome.APPROVE
    assert evaluate(rules, replace(payment(11), tenant_id="ten_2")).outcome is Outcome.DECLINE


# --- velocity ------------------------------------------------------------------------


def test_velocity_count_lets_the_nth_payment_pass_and_fires_on_the_next() -> None:
    rule = Velocity(Dimension.PAYER, 60, max_count=3)
    assert not fired(rule, payment(), window(Dimension.PAYER, 60, 2))  # this is the 3rd
    assert fired(rule, payment(), window(Dimension.PAYER, 60, 3))  # this is the 4th


def test_velocity_sum_counts_this_amount_and_fires_only_above_the_maximum() -> None:
    rule = Velocity(Dimension.IP, 3600, max_sum=(("USD", 10_000),))
    assert not fired(rule, payment(4_000), window(Dimension.IP, 3600, 5, 6_000))  # = 10 000
    assert fired(rule, payment(4_001), window(Dimension.IP, 3600, 5, 6_000))
    assert not fired(rule, payment(9_000, "EUR"), window(Dimension.IP, 3600, 5, 6_000))


def test_velocity_reads_its_own_window_and_dimension_only() -> None:
    rule = Velocity(Dimension.DEVICE, 60, max_count=1)
    assert not fired(rule, payment(), window(Dimension.DEVICE, 3600, 9))
    assert not fired(rule, payment(), window(Dimension.PAYER, 60, 9))
    assert fired(rule, payment(), window(Dimension.DEVICE, 60, 1))


def test_velocity_without_a_value_for_its_dimension_does_not_fire() -> None:
    rule = Velocity(Dimension.DEVICE, 60, max_count=1)
    assert not fired(rule, payment(device_id=""), window(Dimension.DEVICE, 60, 9))


# --- list ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        (ListField.PAYER_ACCOUNT_ID, "acct_a"),
        (ListField.PAYEE_ACCOUNT_ID, "acct_b"),
        (ListField.IP, "192.0.2.1"),
        (ListField.DEVICE_ID, "dev_1"),
        (ListField.COUNTRY, "US"),
    ],
)
def test_a_list_rule_fires_when_its_field_is_in_its_list(field: ListField, value: str) -> None:
    rule = ListMatch(field, "blocked")
    assert fired(rule, payment(), Features(lists=frozenset({("blocked", value)})))
    assert not fired(rule, payment(), Features(lists=frozenset({("other", value)})))
    assert not fired(rule, payment(), Features(lists=frozenset({("blocked", value + "0")})))


# --- new_account ---------------------------------------------------------------------


def history(
    first_seen_us: int, count: int, country: str = "US", amounts: AmountStats | None = None
) -> Features:
    return Features(now_us=NOW, payer=PayerHistory(first_seen_us, count, country, amounts))


def test_a_payer_without_history_is_new_and_the_amount_boundary_holds() -> None:
    rule = NewAccount(max_amount=(("USD", 10_000),), max_age_s=86_400)
    assert not fired(rule, payment(10_000))
    assert fired(rule, payment(10_001))
    assert not fired(rule, payment(10**6, "EUR"))


def test_a_payer_first_seen_less_than_max_age_ago_is_new_and_then_is_not() -> None:
    rule = NewAccount(max_amount=(("USD", 10_000),), max_age_s=86_400)
    assert fired(rule, payment(20_000), history(NOW - DAY_US + 1, 50))
    assert not fired(rule, payment(20_000), history(NOW - DAY_US, 50))


def test_a_payer_with_fewer_than_min_payments_is_new() -> None:
    rule = NewAccount(max_amount=(("USD", 10_000),), min_payments=3)
    assert fired(rule, payment(20_000), history(NOW - 100 * DAY_US, 2))
    assert not fired(rule, payment(20_000), history(NOW - 100 * DAY_US, 3))


# --- country_mismatch ----------------------------------------------------------------


def test_a_country_other_than_the_usual_one_fires_and_no_history_does_not() -> None:
    rule = CountryMismatch()
    assert fired(rule, payment(country="FR"), history(NOW, 5, "US"))
    assert not fired(rule, payment(country="US"), history(NOW, 5, "US"))
    assert not fired(rule, payment(country="FR"), Features(now_us=NOW))
    assert not fired(rule, payment(country=""), history(NOW, 5, "US"))


# --- amount_zscore -------------------------------------------------------------------


def stats(*amounts: int) -> AmountStats:
    result = None
    for amount in amounts:
        result = welford(result, amount)
    assert result is not None
    return result


def test_welford_gives_the_sample_mean_and_deviation() -> None:
    s = stats(2, 4, 4, 4, 5, 5, 7, 9)
    assert s.count == 8
    assert s.mean == pytest.approx(5.0)
    assert s.stddev == pytest.approx(2.138, abs=1e-3)


def test_an_amount_more_than_z_deviations_above_the_mean_fires() -> None:
    rule = AmountZScore(z=3, min_history=5)
    amounts = stats(900, 1_100, 900, 1_100, 1_000, 1_000)  # mean 1000, sd ~89.4
    features = history(NOW, 6, amounts=amounts)
    limit = 1_000 + 3 * amounts.stddev  # ~1268.3
    assert not fired(rule, payment(int(limit)), features)
    assert fired(rule, payment(int(limit) + 1), features)


def test_the_zscore_needs_min_history_payments() -> None:
    rule = AmountZScore(z=3, min_history=7)
    features = history(NOW, 6, amounts=stats(900, 1_100, 900, 1_100, 1_000, 1_000))
    assert not fired(rule, payment(10**6), features)


# --- precedence ----------------------------------------------------------------------


def rule(rid: str, condition: object, action: Action, score: int = 100) -> Rule:
    return Rule(id=rid, condition=condition, action=action, reason_code=rid, score=score)  # type: ignore[arg-type]


ALWAYS = AmountLimit(limits=(), default_limit=0)


def test_scores_add_up_are_capped_and_thresholds_raise_the_outcome() -> None:
    rules = RuleSet(
        rules=(rule("a", ALWAYS, Action.SCORE, 40), rule("b", ALWAYS, Action.SCORE, 30)),
        thresholds=Thresholds(review_at=70, decline_at=90),
    )
    verdict = evaluate(rules, payment())
    assert (verdict.outcome, verdict.score) == (Outcome.REVIEW, 70)
    more = replace(rules, rules=(*rules.rules, rule("c", ALWAYS, Action.SCORE, 50)))
    verdict = evaluate(more, payment())
    assert (verdict.outcome, verdict.score) == (Outcome.DECLINE, 100)
    below = replace(rules, thresholds=Thresholds(review_at=71))
    assert evaluate(below, payment()).outcome is Outcome.APPROVE


def test_an_allow_match_overrides_velocity_review_and_score_rules() -> None:
    allow = rule("trusted", ListMatch(ListField.PAYER_ACCOUNT_ID, "trusted"), Action.ALLOW, 0)
    velocity = rule("burst", Velocity(Dimension.PAYER, 60, max_count=1), Action.DECLINE)
    review = rule("big", ALWAYS, Action.REVIEW, 50)
    features = replace(window(Dimension.PAYER, 60, 5), lists=frozenset({("trusted", "acct_a")}))
    verdict = evaluate(RuleSet(rules=(velocity, review, allow)), payment(), features)
    assert (verdict.outcome, verdict.score) == (Outcome.APPROVE, 0)
    assert [r.code for r in verdict.reasons] == ["trusted"]


def test_an_allow_match_never_overrides_a_block_list_or_amount_limit_decline() -> None:
    allow = rule("trusted", ListMatch(ListField.PAYER_ACCOUNT_ID, "trusted"), Action.ALLOW, 0)
    block = rule("blocked", ListMatch(ListField.IP, "blocked_ips"), Action.DECLINE)
    lists = frozenset({("trusted", "acct_a"), ("blocked_ips", "192.0.2.1")})
    verdict = evaluate(RuleSet(rules=(allow, block)), payment(), Features(lists=lists))
    assert verdict.outcome is Outcome.DECLINE
    limit = rule("limit", AmountLimit((("USD", 10),)), Action.DECLINE)
    only_trusted = Features(lists=frozenset({("trusted", "acct_a")}))
    assert (
        evaluate(RuleSet(rules=(allow, limit)), payment(11), only_trusted).outcome
        is Outcome.DECLINE
    )
