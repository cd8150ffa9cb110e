"""Risk's metrics: each new decision counted by outcome with the rules that fired, once
(a repeated Decide answers the stored decision); the real store on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY

from paymesh.platform.db import Database
from paymesh.platform.migrations import upgrade
from paymesh.risk.app import MIGRATIONS
from paymesh.risk.domain import DecidePayment, Outcome
from paymesh.risk.rules import parse_rules
from paymesh.risk.service import decide_payment
from paymesh.risk.store import SqlRiskStore
from tests.fakes.clock import FixedClock
from tests.fakes.risk import risk_caller, risk_deps

RULES = parse_rules(b"""
version: "metrics-1"
rules:
  - id: big-usd
    kind: amount_limit
    max_amount: {USD: 1000}
    action: review
    reason: amount_over_limit
  - id: huge-usd
    kind: amount_limit
    max_amount: {USD: 5000}
    action: decline
    reason: amount_far_over_limit
""")


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[SqlRiskStore]:
    db = Database(db_url)
    await upgrade(db, MIGRATIONS)
    try:
        yield SqlRiskStore(db)
    finally:
        await db.dispose()


def _decisions(outcome: str) -> float:
    labels = {"service": "risk", "decision": outcome}
    return REGISTRY.get_sample_value("paymesh_risk_decisions_total", labels) or 0.0


def _hits(rule: str) -> float:
    labels = {"service": "risk", "rule": rule}
    return REGISTRY.get_sample_value("paymesh_risk_rule_hits_total", labels) or 0.0


def _cmd(payment_id: str, amount: int) -> DecidePayment:
    return DecidePayment(
        payment_id=payment_id,
        tenant_id="ten_1",
        payer_account_id="acct_a",
        payee_account_id="acct_b",
        amount=amount,
        currency="USD",
    )


async def test_a_new_decision_is_counted_by_outcome_with_each_rule_that_fired(
    store: SqlRiskStore,
) -> None:
    before = {o: _decisions(o) for o in ("approve", "review", "decline")}
    big, huge = _hits("big-usd"), _hits("huge-usd")
    clock = FixedClock()
    outcomes = [
        (
            await decide_payment(
                _cmd(pid, amount), caller=risk_caller(), deps=risk_deps(store, clock, RULES)
            )
        ).outcome
        for pid, amount in (("pay_a", 10), ("pay_r", 2_000), ("pay_d", 9_000))
    ]
    assert outcomes == [Outcome.APPROVE, Outcome.REVIEW, Outcome.DECLINE]
    for outcome in ("approve", "review", "decline"):
        assert _decisions(outcome) == before[outcome] + 1, outcome
    assert (_hits("big-usd"), _hits("huge-usd")) == (big + 2, huge + 1)


async def test_asking_again_answers_the_stored_decision_without_counting_it_again(
    store: SqlRiskStore,
) -> None:
    clock = FixedClock()
    first = await decide_payment(
        _cmd("pay_x", 2_000), caller=risk_caller(), deps=risk_deps(store, clock, RULES)
    )
    reviews, big = _decisions("review"), _hits("big-usd")
    again = await decide_payment(
        _cmd("pay_x", 2_000), caller=risk_caller(), deps=risk_deps(store, clock, RULES)
    )
    assert again == first
    assert (_decisions("review"), _hits("big-usd")) == (reviews, big)
