"""The risk use cases: decide on a payment once, read a decision back, and learn
from the payment events what each payer has done before."""

from __future__ import annotations

from paymesh.contracts.events import Event
from paymesh.platform.clock import Clock
from paymesh.risk import domain
from paymesh.risk.domain import DecidePayment, Decision, RuleSet
from paymesh.risk.errors import DecisionNotFound
from paymesh.risk.events import decision_made, succeeded_payment
from paymesh.risk.store import DecisionStore, PayerStatsStore

__all__ = ["decide_payment", "get_decision", "record_payment_event"]


async def decide_payment(
    cmd: DecidePayment, *, store: DecisionStore, rules: RuleSet, clock: Clock
) -> Decision:
    """Decide on a payment; asking again answers the stored decision, unchanged.

    The stored decision wins even when the rules or the request changed since;
    a payment id decided for another tenant is reported as not found.
    """
    domain.validate(cmd)
    stored = await store.get(cmd.payment_id)
    if stored is None:
        decision = domain.decide(rules, cmd, now_us=clock.now_us())
        stored = await store.add(decision, decision_made(decision))
    if stored.tenant_id != cmd.tenant_id:
        raise DecisionNotFound(cmd.payment_id)
    return stored


async def get_decision(payment_id: str, *, tenant_id: str, store: DecisionStore) -> Decision:
    """The decision made for one of the tenant's payments."""
    decision = await store.get(payment_id) if payment_id else None
    if decision is None or decision.tenant_id != tenant_id:
        raise DecisionNotFound(payment_id)
    return decision


async def record_payment_event(event: Event, *, store: PayerStatsStore, clock: Clock) -> bool:
    """Count a ``payment.succeeded`` for its payer once per event id; False if nothing changed.

    Other event types are ignored without touching the database.
    """
    payment = succeeded_payment(event)
    if payment is None:
        return False
    return await store.apply(event.id, payment, now_us=clock.now_us())
