"""The event contract: every event type, its topic and its typed payload, declared once.

Each event type is one constant here (``PAYMENT_SUCCEEDED = "payment.succeeded"``)
and one :class:`EventSpec` in :data:`CONTRACT`: the topic it travels on, the
protobuf message its ``data`` holds (``payments.v1.Payment`` for the payment
events, the same message the gRPC API answers with) and whether merchants may
receive it by webhook. No other module of ``src/`` spells an event type
(``tests/unit/test_event_contract.py`` checks it).

Producers make events with :func:`new_event` (the type must be in the contract
and the payload its message) and the outbox refuses any other
(:func:`check_publishable`). Consumers read ``data`` with :func:`payload_of`,
which answers None for a type they do not know and ignores fields they do not
know (forward compatibility). ``data`` is the payload's JSON form
(:mod:`paymesh.contracts.objects`): for a payments object, exactly what the REST
API returns for it.

The envelope is CloudEvents 1.0 (JSON). An event is keyed by its aggregate id
(``subject``), so every event of one payment lands on one partition, in order.
``tenant`` is a CloudEvents extension attribute, and so is ``traceparent`` (the
Distributed Tracing extension: the W3C trace context the event was produced in,
written only when tracing is on; optional, absent from the JSON when unset, and
dropped when it is not a string, so an event parses with or without it). Add
fields; never change what one means.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from types import MappingProxyType
from typing import Any, Final, TypeVar

from google.protobuf.message import Message

from paymesh.contracts.accounts.v1 import accounts_pb2 as apb
from paymesh.contracts.objects import MalformedPayload, format_time, from_json, to_json
from paymesh.contracts.payments.v1 import payments_pb2 as ppb
from paymesh.contracts.risk.v1 import risk_pb2 as rpb
from paymesh.contracts.webhooks.v1 import webhooks_pb2 as wpb

__all__ = [
    "CONTRACT",
    "DECISION_MADE",
    "ENDPOINT_DISABLED",
    "PAYMENT_CANCELED",
    "PAYMENT_FAILED",
    "PAYMENT_IN_REVIEW",
    "PAYMENT_REQUIRES_CAPTURE",
    "PAYMENT_SUCCEEDED",
    "PAYOUT_FAILED",
    "PAYOUT_RETURNED",
    "PAYOUT_RETURN_FAILED",
    "PAYOUT_SUCCEEDED",
    "PUBLIC_EVENT_TYPES",
    "REFUND_FAILED",
    "REFUND_SUCCEEDED",
    "REVIEW_APPROVED",
    "REVIEW_DECLINED",
    "TOPIC_ACCOUNTS",
    "TOPIC_PAYMENTS",
    "TOPIC_RISK",
    "TOPIC_WEBHOOKS",
    "TOPUP_FAILED",
    "TOPUP_REVERSAL_FAILED",
    "TOPUP_REVERSAL_SUCCEEDED",
    "TOPUP_SUCCEEDED",
    "TRANSFER_EXPIRED",
    "TRANSFER_FAILED",
    "TRANSFER_SUCCEEDED",
    "Event",
    "EventSpec",
    "MalformedPayload",
    "UnknownEventType",
    "check_publishable",
    "format_time",
    "new_event",
    "payload_of",
]

TOPIC_PAYMENTS = "paymesh.payments.v1"
TOPIC_ACCOUNTS = "paymesh.accounts.v1"
TOPIC_RISK = "paymesh.risk.v1"
TOPIC_WEBHOOKS = "paymesh.webhooks.v1"

# The event types. Past tense; "<object>.<what happened>".
PAYMENT_REQUIRES_CAPTURE: Final = "payment.requires_capture"
PAYMENT_IN_REVIEW: Final = "payment.in_review"
PAYMENT_SUCCEEDED: Final = "payment.succeeded"
PAYMENT_CANCELED: Final = "payment.canceled"
PAYMENT_FAILED: Final = "payment.failed"
REFUND_SUCCEEDED: Final = "refund.succeeded"
REFUND_FAILED: Final = "refund.failed"
TOPUP_SUCCEEDED: Final = "topup.succeeded"
TOPUP_FAILED: Final = "topup.failed"
TOPUP_REVERSAL_SUCCEEDED: Final = "topup_reversal.succeeded"
TOPUP_REVERSAL_FAILED: Final = "topup_reversal.failed"
PAYOUT_SUCCEEDED: Final = "payout.succeeded"
PAYOUT_FAILED: Final = "payout.failed"
PAYOUT_RETURNED: Final = "payout.returned"
PAYOUT_RETURN_FAILED: Final = "payout_return.failed"
TRANSFER_SUCCEEDED: Final = "transfer.succeeded"
TRANSFER_FAILED: Final = "transfer.failed"
TRANSFER_EXPIRED: Final = "transfer.expired"
DECISION_MADE: Final = "risk.decision_made"
REVIEW_APPROVED: Final = "review.approved"
REVIEW_DECLINED: Final = "review.declined"
ENDPOINT_DISABLED: Final = "webhook_endpoint.disabled"


@dataclass(frozen=True)
class EventSpec:
    """What an event type is: where it travels, what its data holds, who may see it."""

    event_type: str
    topic: str
    payload: type[Message]
    # Merchants may subscribe to it (webhooks deliver it; the REST API lists it).
    public: bool


def _specs(*specs: EventSpec) -> Mapping[str, EventSpec]:
    return MappingProxyType({s.event_type: s for s in specs})


# Every event type paymesh publishes. Add a line here (and the constant above)
# to add one; docs/contributing.md lists the other files.
CONTRACT: Final[Mapping[str, EventSpec]] = _specs(
    EventSpec(PAYMENT_REQUIRES_CAPTURE, TOPIC_PAYMENTS, ppb.Payment, public=True),
    EventSpec(PAYMENT_IN_REVIEW, TOPIC_PAYMENTS, ppb.Payment, public=True),
    EventSpec(PAYMENT_SUCCEEDED, TOPIC_PAYMENTS, ppb.Payment, public=True),
    EventSpec(PAYMENT_CANCELED, TOPIC_PAYMENTS, ppb.Payment, public=True),
    EventSpec(PAYMENT_FAILED, TOPIC_PAYMENTS, ppb.Payment, public=True),
    EventSpec(REFUND_SUCCEEDED, TOPIC_PAYMENTS, ppb.Refund, public=True),
    EventSpec(REFUND_FAILED, TOPIC_PAYMENTS, ppb.Refund, public=True),
    EventSpec(TOPUP_SUCCEEDED, TOPIC_PAYMENTS, ppb.Topup, public=True),
    EventSpec(TOPUP_FAILED, TOPIC_PAYMENTS, ppb.Topup, public=True),
    EventSpec(TOPUP_REVERSAL_SUCCEEDED, TOPIC_PAYMENTS, ppb.TopupReversal, public=True),
    EventSpec(TOPUP_REVERSAL_FAILED, TOPIC_PAYMENTS, ppb.TopupReversal, public=True),
    EventSpec(PAYOUT_SUCCEEDED, TOPIC_PAYMENTS, ppb.Payout, public=True),
    EventSpec(PAYOUT_FAILED, TOPIC_PAYMENTS, ppb.Payout, public=True),
    EventSpec(PAYOUT_RETURNED, TOPIC_PAYMENTS, ppb.PayoutReturn, public=True),
    EventSpec(PAYOUT_RETURN_FAILED, TOPIC_PAYMENTS, ppb.PayoutReturn, public=True),
    EventSpec(TRANSFER_SUCCEEDED, TOPIC_PAYMENTS, ppb.Transfer, public=True),
    EventSpec(TRANSFER_FAILED, TOPIC_PAYMENTS, ppb.Transfer, public=True),
    EventSpec(TRANSFER_EXPIRED, TOPIC_ACCOUNTS, apb.TransferExpired, public=False),
    EventSpec(DECISION_MADE, TOPIC_RISK, rpb.DecisionMade, public=False),
    EventSpec(REVIEW_APPROVED, TOPIC_RISK, rpb.ReviewResolved, public=False),
    EventSpec(REVIEW_DECLINED, TOPIC_RISK, rpb.ReviewResolved, public=False),
    EventSpec(ENDPOINT_DISABLED, TOPIC_WEBHOOKS, wpb.EndpointDisabled, public=True),
)
# What merchants may subscribe to, and what webhooks deliver.
PUBLIC_EVENT_TYPES: Final = frozenset(t for t, s in CONTRACT.items() if s.public)

M = TypeVar("M", bound=Message)


class UnknownEventType(ValueError):
    """A producer made an event the contract does not declare (or not as declared)."""


# A version-00 traceparent is 55 characters; later versions may append fields.
_MAX_TRACEPARENT = 256


@dataclass(frozen=True)
class Event:
    """One CloudEvent: something that happened, past tense (``payment.succeeded``)."""

    id: str
    source: str
    type: str
    subject: str
    time: str
    tenant: str
    data: dict[str, Any] = field(default_factory=dict)
    specversion: str = "1.0"
    datacontenttype: str = "application/json"
    traceparent: str | None = None

    def to_json(self) -> bytes:
        """The structured-mode JSON form (without ``traceparent`` when it is unset)."""
        obj = asdict(self)
        if self.traceparent is None:
            del obj["traceparent"]
        return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> Event:
        """Parse the structured-mode JSON form; unknown attributes are ignored, and so is
        a ``traceparent`` that is not a plausible one (tracing never refuses an event)."""
        return cls.from_dict(json.loads(raw))

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> Event:
        """The event the parsed envelope `obj` is (see :meth:`from_json`)."""
        known = {f: obj[f] for f in cls.__dataclass_fields__ if f in obj}
        trace = known.get("traceparent")
        if trace is not None and not (isinstance(trace, str) and len(trace) <= _MAX_TRACEPARENT):
            del known["traceparent"]
        return cls(**known)


def new_event(
    event_type: str,
    payload: Message,
    *,
    event_id: str,
    source: str,
    subject: str,
    time_us: int,
    tenant: str,
) -> Event:
    """The event `event_type` about `subject`, its data the JSON form of `payload`.

    Raises :class:`UnknownEventType` when `event_type` is not in the contract or
    `payload` is not its message.
    """
    spec = CONTRACT.get(event_type)
    if spec is None:
        raise UnknownEventType(f"{event_type!r} is not an event type of the contract")
    if not isinstance(payload, spec.payload):
        raise UnknownEventType(
            f"{event_type!r} carries {spec.payload.DESCRIPTOR.full_name}, "
            f"not {payload.DESCRIPTOR.full_name}"
        )
    return Event(
        id=event_id,
        source=source,
        type=event_type,
        subject=subject,
        time=format_time(time_us),
        tenant=tenant,
        data=to_json(payload),
    )


def check_publishable(event: Event) -> None:
    """Refuse (:class:`UnknownEventType`) an event of a type the contract does not declare."""
    if event.type not in CONTRACT:
        raise UnknownEventType(f"{event.type!r} is not an event type of the contract")


def payload_of(event: Event, payload: type[M]) -> M | None:
    """The data of `event` as a `payload`; None when its type is not one carrying it.

    Unknown fields are ignored; a field of the wrong JSON type raises
    :class:`MalformedPayload`.
    """
    spec = CONTRACT.get(event.type)
    if spec is None or spec.payload is not payload:
        return None
    return from_json(payload, event.data)
