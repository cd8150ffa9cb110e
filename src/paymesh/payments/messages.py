"""The protobuf form of the payments objects: what the gRPC API answers with, and the
events payments publishes about them.

Events are CloudEvents on ``TOPIC_PAYMENTS``; their types and payloads are declared
in :mod:`paymesh.contracts.events`. Each payload is the object's protobuf message
(``payments.v1.Payment``, …, the one the gRPC API answers with), and ``data`` is its
public JSON form (:mod:`paymesh.contracts.objects`): exactly what the REST API
returns for the object. Each event is keyed by the object it is about (``subject``):
the payment, the refund (whose data names its payment), the top-up, the payout or
the transfer. Its id is derived from the object id and the event type, so a
replayed transition cannot make a second, distinct event.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any, TypeVar

from google.protobuf.message import Message

from paymesh.contracts.events import Event, new_event
from paymesh.contracts.payments.v1 import payments_pb2 as pb
from paymesh.payments.domain import CaptureMethod, P2PTransfer, Payment, Payout, Refund, Topup

__all__ = [
    "SOURCE",
    "event_id",
    "message_of",
    "object_events",
    "payment_events",
    "payment_pb",
    "payout_events",
    "payout_pb",
    "refund_events",
    "refund_pb",
    "topup_events",
    "topup_pb",
    "transfer_events",
    "transfer_pb",
]

M = TypeVar("M", bound=Message)

_CAPTURE_METHODS_PB = {
    CaptureMethod.AUTOMATIC: pb.CAPTURE_METHOD_AUTOMATIC,
    CaptureMethod.MANUAL: pb.CAPTURE_METHOD_MANUAL,
}


def message_of(cls: type[M], obj: object, **overrides: Any) -> M:
    """The message `cls` of `obj`'s attributes named like the message's fields (the
    fields `obj` has not keep their defaults), and `overrides`."""
    key = (cls, type(obj))
    names = _SHARED_FIELDS.get(key)
    if names is None:  # the domain's objects have the same attributes as their class
        names = tuple(f.name for f in cls.DESCRIPTOR.fields if hasattr(obj, f.name))
        _SHARED_FIELDS[key] = names
    values = {name: getattr(obj, name) for name in names if name not in overrides}
    return cls(**values, **overrides)


# The fields a message shares with a class of objects, by (message, class).
_SHARED_FIELDS: dict[tuple[type[Message], type], tuple[str, ...]] = {}


def payment_pb(p: Payment) -> pb.Payment:
    """The protobuf form of a payment."""
    risk = None if p.risk is None else message_of(pb.RiskAssessment, p.risk)
    return message_of(
        pb.Payment,
        p,
        capture_method=_CAPTURE_METHODS_PB[p.capture_method],
        status=p.status.value,
        metadata=dict(p.metadata),
        context=message_of(pb.PaymentContext, p.context),
        risk=risk,
    )


def _same_names(cls: type[M], obj: Refund | Topup | Payout | P2PTransfer) -> M:
    """The message `cls` of a flow object whose fields have the message's names
    (its status an enum of the message's strings)."""
    return message_of(cls, obj, status=obj.status.value)


def refund_pb(r: Refund) -> pb.Refund:
    """The protobuf form of a refund."""
    return _same_names(pb.Refund, r)


def topup_pb(t: Topup) -> pb.Topup:
    """The protobuf form of a top-up."""
    return _same_names(pb.Topup, t)


def payout_pb(p: Payout) -> pb.Payout:
    """The protobuf form of a payout."""
    return _same_names(pb.Payout, p)


def transfer_pb(t: P2PTransfer) -> pb.Transfer:
    """The protobuf form of a P2P transfer."""
    return _same_names(pb.Transfer, t)


SOURCE = "/paymesh/payments"

# The outbox's event_id column holds 64 characters.
_MAX_ID = 64


def event_id(object_id: str, event_type: str) -> str:
    """The deterministic id of the `event_type` event about `object_id`."""
    raw = f"evt_{object_id}_{event_type}"
    if len(raw) <= _MAX_ID:
        return raw
    return f"evt_{hashlib.sha256(raw.encode()).hexdigest()[:40]}"


def object_events(
    object_id: str, tenant_id: str, payload: Message, types: Iterable[str], now_us: int
) -> list[Event]:
    """The events of `types` about the object, `payload` its protobuf message (a flow's
    module builds its events with this)."""
    return [
        new_event(
            t,
            payload,
            event_id=event_id(object_id, t),
            source=SOURCE,
            subject=object_id,
            time_us=now_us,
            tenant=tenant_id,
        )
        for t in types
    ]


def payment_events(p: Payment, types: Iterable[str], now_us: int) -> list[Event]:
    """The events of a payment transition."""
    return object_events(p.id, p.tenant_id, payment_pb(p), types, now_us)


def refund_events(r: Refund, types: Iterable[str], now_us: int) -> list[Event]:
    """The events of a refund transition."""
    return object_events(r.id, r.tenant_id, refund_pb(r), types, now_us)


def topup_events(t: Topup, types: Iterable[str], now_us: int) -> list[Event]:
    """The events of a top-up transition."""
    return object_events(t.id, t.tenant_id, topup_pb(t), types, now_us)


def payout_events(p: Payout, types: Iterable[str], now_us: int) -> list[Event]:
    """The events of a payout transition."""
    return object_events(p.id, p.tenant_id, payout_pb(p), types, now_us)


def transfer_events(t: P2PTransfer, types: Iterable[str], now_us: int) -> list[Event]:
    """The events of a P2P transfer transition."""
    return object_events(t.id, t.tenant_id, transfer_pb(t), types, now_us)
