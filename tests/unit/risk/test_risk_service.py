"""The risk use cases over an in-memory store: idempotency and tenancy."""

from __future__ import annotations

import pytest

from paymesh.contracts.events import Event
from paymesh.risk.domain import DecidePayment, Decision, Outcome, amount_limit_rules
from paymesh.risk.errors import DecisionNotFound
from paymesh.risk.service import decide_payment, get_decision
from tests.fakes.clock import FixedClock
from tests.fakes.risk import risk_caller, risk_deps


class FakeDecisionStore:
    """DecisionStore in memory; keeps the events it was given."""

    def __init__(self) -> None:
        self.decisions: dict[str, Decision] = {}
        self.events: list[Event] = []

    async def get(self, payment_id: str) -> Decision | None:
        return self.decisions.get(payment_id)

    async def add(
        self,
        decision: Decision,
        event: Event,
        review: object | None = None,
        *,
        velocity_at_us: int | None = None,
    ) -> Decision:
        if decision.payment_id not in self.decisions:
            self.decisions[decision.payment_id] = decision
            self.events.append(event)
        return self.decisions[decision.payment_id]


def cmd(amount: int, tenant_id: str = "ten_1") -> DecidePayment:
    return DecidePayment(
        payment_id="pay_1",
        tenant_id=tenant_id,
        payer_account_id="acct_a",
        payee_account_id="acct_b",
        amount=amount,
        currency="USD",
    )


async def test_asking_again_answers_the_first_decision_even_after_the_rules_change() -> None:
    store, clock = FakeDecisionStore(), FixedClock()
    strict = amount_limit_rules({"USD": 100}, 100)
    lenient = amount_limit_rules({"USD": 1_000}, 1_000)
    first = await decide_payment(
        cmd(500), caller=risk_caller(), deps=risk_deps(store, clock, strict)
    )
    clock.advance(60)
    again = await decide_payment(
        cmd(500), caller=risk_caller(), deps=risk_deps(store, clock, lenient)
    )
    assert first.outcome is Outcome.DECLINE
    assert again == first
    assert [e.type for e in store.events] == ["risk.decision_made"]
    assert store.events[0].subject == "pay_1"
    assert store.events[0].data["outcome"] == "decline"


async def test_another_tenant_cannot_decide_or_read_a_decided_payment() -> None:
    store, clock = FakeDecisionStore(), FixedClock()
    rules = amount_limit_rules({}, 1_000)
    await decide_payment(cmd(10), caller=risk_caller(), deps=risk_deps(store, clock, rules))
    with pytest.raises(DecisionNotFound):
        await decide_payment(
            cmd(10, "ten_2"), caller=risk_caller("ten_2"), deps=risk_deps(store, clock, rules)
        )
    with pytest.raises(DecisionNotFound):
        await get_decision(
            "pay_1", caller=risk_caller("ten_2"), deps=risk_deps(store, clock, rules)
        )
    assert (
        await get_decision(
            "pay_1", caller=risk_caller("ten_1"), deps=risk_deps(store, clock, rules)
        )
    ).amount == 10
