"""The events the risk service publishes, and the payment events it consumes.

Published: ``risk.decision_made`` on :data:`~paymesh.contracts.events.TOPIC_RISK`,
keyed by the payment id, once per payment: a repeated Decide answers the
stored decision and publishes nothing.

Also published: ``review.approved`` / ``review.declined`` on the same topic,
keyed by the payment id, when a review is resolved (by an operator, or by the
timeout default with ``resolved_by: "timeout"``); data ``{"payment_id",
"tenant_id", "resolution": "approve"|"decline", "resolved_by", "note"}``. The
event id is ``evt_{payment_id}_{type}`` (a sha256 digest ``evt_<40 hex>`` when
that is over 64 characters), so it is one event per review.

Consumed: payment events on :data:`~paymesh.contracts.events.TOPIC_PAYMENTS`
in the consumer group :data:`GROUP` (see
:func:`record_payment_event`):
``payment.requires_capture``, ``payment.in_review`` and ``payment.succeeded``
put the payment in the velocity windows (once per payment id);
``payment.succeeded`` also feeds the payer's history; ``payment.failed`` and
``payment.canceled`` take it out of the windows (the money did not move).
Every other type is ignored. The payload is the contract's typed message
``payments.v1.Payment`` (the public payment object; see
:mod:`paymesh.contracts.events`), so risk imports nothing of payments, and
fields it does not know are ignored.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import asdict, replace

from google.protobuf.message import Message

from paymesh.contracts.events import (
    DECISION_MADE,
    PAYMENT_CANCELED,
    PAYMENT_FAILED,
    PAYMENT_IN_REVIEW,
    PAYMENT_REQUIRES_CAPTURE,
    PAYMENT_SUCCEEDED,
    REVIEW_APPROVED,
    REVIEW_DECLINED,
    TOPIC_PAYMENTS,
    TOPIC_RISK,
    Event,
    MalformedPayload,
    new_event,
    payload_of,
)
from paymesh.contracts.objects import parse_time
from paymesh.contracts.payments.v1.payments_pb2 import Payment
from paymesh.contracts.risk.v1 import risk_pb2 as rpb
from paymesh.platform.bus import Handler
from paymesh.platform.clock import new_id
from paymesh.platform.logging import get_logger
from paymesh.risk.domain import (
    DECISION_VALUES,
    DecidePayment,
    Decision,
    PaymentContext,
    PaymentUpdate,
    Review,
    SucceededPayment,
)
from paymesh.risk.ports import Deps

__all__ = [
    "CONSUMED_TYPES",
    "CONSUMER",
    "GROUP",
    "PAYMENTS_TOPIC",
    "SOURCE",
    "TOPIC",
    "decision_made",
    "payment_events_handler",
    "payment_update",
    "record_payment_event",
    "review_resolved",
    "succeeded_payment",
]

log = get_logger(__name__)

TOPIC = TOPIC_RISK
SOURCE = "paymesh.risk"

PAYMENTS_TOPIC = TOPIC_PAYMENTS
_MOVED = frozenset({PAYMENT_REQUIRES_CAPTURE, PAYMENT_IN_REVIEW})
_DROPPED = frozenset({PAYMENT_FAILED, PAYMENT_CANCELED})
# The payment event types the features read; every other type is ignored.
CONSUMED_TYPES = _MOVED | _DROPPED | {PAYMENT_SUCCEEDED}
# The consumer group on the bus, and the consumer's name in the inbox.
GROUP = "risk"
CONSUMER = "risk.payer_stats"

_MAX_EVENT_ID = 64


# The fields of a decision its announcement carries as they are (its tenant is the
# event's).
_ANNOUNCED = tuple(name for name in DECISION_VALUES if name != "tenant_id")


def decision_made(decision: Decision, *, event_id: str | None = None) -> Event:
    """The CloudEvent announcing `decision`, keyed by its payment id."""
    payload = rpb.DecisionMade(
        **{name: getattr(decision, name) for name in _ANNOUNCED},
        outcome=decision.outcome.value,
        reasons=[rpb.Reason(**asdict(r)) for r in decision.reasons],
    )
    return _event(DECISION_MADE, payload, decision, event_id or new_id("evt"))


def review_resolved(review: Review) -> Event:
    """The event announcing a resolved review, keyed by its payment id."""
    resolution = review.resolution
    if resolution is None:
        raise ValueError(f"review of {review.payment_id} is not resolved")
    kind = REVIEW_APPROVED if resolution.value == "approve" else REVIEW_DECLINED
    payload = rpb.ReviewResolved(
        payment_id=review.payment_id,
        tenant_id=review.tenant_id,
        resolution=resolution.value,
        resolved_by=review.resolved_by,
        note=review.note,
    )
    return _event(kind, payload, review, _event_id(review.payment_id, kind))


def _event(kind: str, payload: Message, about: Decision | Review, event_id: str) -> Event:
    """An event of risk about one payment's decision or review: keyed by the payment
    id, in its tenant, at the time the decision was made or the review resolved."""
    at_us = about.decided_at_us if isinstance(about, Decision) else about.resolved_at_us
    return new_event(
        kind,
        payload,
        event_id=event_id,
        source=SOURCE,
        subject=about.payment_id,
        time_us=at_us,
        tenant=about.tenant_id,
    )


def _event_id(object_id: str, event_type: str) -> str:
    """A deterministic event id that fits the outbox's 64 characters (hashed when longer)."""
    raw = f"evt_{object_id}_{event_type}"
    if len(raw) <= _MAX_EVENT_ID:
        return raw
    return f"evt_{hashlib.sha256(raw.encode()).hexdigest()[:40]}"


def payment_update(event: Event, decision: Decision | None) -> PaymentUpdate | None:
    """What a payment event means to the features; None for events that mean nothing.

    The payment's context (IP, device, country) comes from the decision risk
    made on it, since payment events do not carry it; its velocity entry is
    timed at the decision when there is one, else at the event.
    """
    if event.type not in CONSUMED_TYPES:
        return None
    try:
        data = payload_of(event, Payment)
        if data is None:
            return None
        at_us = parse_time(event.time)
        if decision is not None and decision.tenant_id == event.tenant:
            payment = decision.payment()
            at_us = decision.decided_at_us
        else:
            payment = DecidePayment(
                payment_id=_text(data.id or event.subject),
                tenant_id=_text(event.tenant),
                payer_account_id=_text(data.payer_account_id),
                payee_account_id=data.payee_account_id,
                amount=_amount(data.amount or data.amount_captured),
                currency=_text(data.currency),
                context=PaymentContext(),
            )
    except (MalformedPayload, TypeError, ValueError) as exc:
        log.warning("payment_event_malformed", event_id=event.id, error=str(exc))
        return None
    if event.type in _DROPPED:
        return PaymentUpdate(payment_id=payment.payment_id, tenant_id=payment.tenant_id,
                             kind="dropped", payment=payment, at_us=at_us)  # fmt: skip
    succeeded = None
    if event.type == PAYMENT_SUCCEEDED:
        succeeded = succeeded_payment(event)
        if succeeded is None:
            return None
        succeeded = replace(succeeded, country=payment.context.country)
    return PaymentUpdate(
        payment_id=payment.payment_id,
        tenant_id=payment.tenant_id,
        kind="succeeded" if succeeded else "moved",
        payment=payment,
        at_us=at_us,
        succeeded=succeeded,
    )


def succeeded_payment(event: Event) -> SucceededPayment | None:
    """The succeeded payment `event` announces; None for any other event.

    A malformed ``payment.succeeded`` is logged and skipped rather than
    raised: raising would make the bus redeliver it forever and stall every
    event behind it on its partition.
    """
    if event.type != PAYMENT_SUCCEEDED:
        return None
    try:
        data = payload_of(event, Payment)
        if data is None:
            return None
        payment = SucceededPayment(
            payment_id=data.id or event.subject,
            tenant_id=event.tenant,
            payer_account_id=_text(data.payer_account_id),
            currency=_text(data.currency),
            amount=_amount(data.amount_captured or data.amount),
            at_us=parse_time(event.time),
        )
    except (MalformedPayload, TypeError, ValueError) as exc:
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


async def record_payment_event(event: Event, *, deps: Deps) -> bool:
    """Apply a payment event to the features once per event id; False if nothing changed.

    Types that mean nothing to the features are ignored without touching storage.
    """
    if deps.features is None or event.type not in CONSUMED_TYPES:
        return False
    decision = await deps.store.get(event.subject) if event.subject else None
    update = payment_update(event, decision)
    if update is None:
        return False
    return await deps.features.apply(event.id, update, now_us=deps.clock.now_us())


def payment_events_handler(deps: Deps, *, running: asyncio.Event) -> Handler:
    """The handler of the payment events: each waits until `running` is set.

    Events are delivered from the bus's own task; a stopped service never acks (the
    bus cancels the wait when it stops, so the event is delivered again).
    """

    async def handle(event: Event) -> None:
        await running.wait()
        await record_payment_event(event, deps=deps)

    return handle
