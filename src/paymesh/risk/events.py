"""The events the risk service publishes, and the payment events it consumes.

Published: ``risk.decision_made`` on :data:`~paymesh.contracts.events.TOPIC_RISK`,
keyed by the payment id, once per payment: a repeated Decide answers the
stored decision and publishes nothing.

Consumed: payment events on :data:`~paymesh.contracts.events.TOPIC_PAYMENTS`
in the consumer group :data:`GROUP`. ``payment.succeeded`` feeds the payer's
history features (see :func:`paymesh.risk.service.record_payment_event`);
every other type is ignored. The payload is the payments service's public
payment object (``id``, ``payer_account_id``, ``currency``,
``amount_captured``, …), read here by field name so risk imports nothing of
payments.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from paymesh.contracts.events import TOPIC_PAYMENTS, TOPIC_RISK, Event, format_time
from paymesh.platform.clock import new_id
from paymesh.platform.logging import get_logger
from paymesh.risk.domain import Decision, SucceededPayment

__all__ = [
    "CONSUMER",
    "DECISION_MADE",
    "GROUP",
    "PAYMENTS_TOPIC",
    "PAYMENT_SUCCEEDED",
    "SOURCE",
    "TOPIC",
    "decision_made",
    "succeeded_payment",
]

log = get_logger(__name__)

TOPIC = TOPIC_RISK
SOURCE = "paymesh.risk"
DECISION_MADE = "risk.decision_made"

PAYMENTS_TOPIC = TOPIC_PAYMENTS
PAYMENT_SUCCEEDED = "payment.succeeded"
# The consumer group on the bus, and the consumer's name in the inbox.
GROUP = "risk"
CONSUMER = "risk.payer_stats"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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


def succeeded_payment(event: Event) -> SucceededPayment | None:
    """The succeeded payment `event` announces; None for any other event.

    A malformed ``payment.succeeded`` is logged and skipped rather than
    raised: raising would make the bus redeliver it forever and stall every
    event behind it on its partition.
    """
    if event.type != PAYMENT_SUCCEEDED:
        return None
    data: dict[str, Any] = event.data
    try:
        payment = SucceededPayment(
            payment_id=str(data.get("id") or event.subject),
            tenant_id=event.tenant,
            payer_account_id=_text(data["payer_account_id"]),
            currency=_text(data["currency"]),
            amount=_amount(data.get("amount_captured", data.get("amount"))),
            at_us=_time_us(event.time),
        )
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("payment_event_malformed", event_id=event.id, error=str(exc))
        return None
    if not payment.tenant_id:
        log.warning("payment_event_malformed", event_id=event.id, error="no tenant")
        return None
    return payment


def _text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return value


def _amount(value: object) -> int:
    # bool is an int in Python; money never is.
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"expected an amount in minor units, got {value!r}")
    return value


def _time_us(value: str) -> int:
    """Unix microseconds from an RFC 3339 time (``…Z`` or with an offset)."""
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"time without a zone: {value!r}")
    return (moment - _EPOCH) // timedelta(microseconds=1)
