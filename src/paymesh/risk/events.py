"""The events the risk service publishes (it consumes none yet).

``risk.decision_made`` on :data:`~paymesh.contracts.events.TOPIC_RISK`, keyed by
the payment id, once per payment: a repeated Decide answers the stored
decision and publishes nothing.
"""

from __future__ import annotations

from paymesh.contracts.events import TOPIC_RISK, Event, format_time
from paymesh.platform.clock import new_id
from paymesh.risk.domain import Decision

__all__ = ["DECISION_MADE", "SOURCE", "TOPIC", "decision_made"]

TOPIC = TOPIC_RISK
SOURCE = "paymesh.risk"
DECISION_MADE = "risk.decision_made"


def decision_made(decision: Decision, *, event_id: str | None = None) -> Event:
    """The CloudEvent announcing `decision`, keyed by its payment id."""
    return Event(
        id=event_id or new_id("evt"),
        source=SOURCE,
        type=DECISION_MADE,
        subject=decision.payment_id,
        time=format_time(decision.decided_at_us),
        tenant=decision.tenant_id,
        data={
            "payment_id": decision.payment_id,
            "payer_account_id": decision.payer_account_id,
            "payee_account_id": decision.payee_account_id,
            "amount": decision.amount,
            "currency": decision.currency,
            "outcome": decision.outcome.value,
            "score": decision.score,
            "reasons": [
                {"code": r.code, "rule_id": r.rule_id, "message": r.message}
                for r in decision.reasons
            ],
            "rules_version": decision.rules_version,
            "decided_at_us": decision.decided_at_us,
        },
    )
