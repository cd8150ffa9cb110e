"""The events payments publishes, as CloudEvents on ``TOPIC_PAYMENTS``.

The types and their payloads are declared in :mod:`paymesh.contracts.events`;
each payload is the object's protobuf message (``payments.v1.Payment``, …, the
one the gRPC API answers with), and ``data`` is its public JSON form: exactly
what the REST API returns for the object.

Each event is keyed by the object it is about (``subject``): the payment,
the refund (whose data names its payment), the top-up, the payout or the
transfer. Its id is derived from the object id and the event type, so a
replayed transition cannot make a second, distinct event.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from google.protobuf.message import Message

from paymesh.contracts.events import Event, new_event
from paymesh.payments.domain import P2PTransfer, Payment, Payout, Refund, Topup
from paymesh.payments.messages import payment_pb, payout_pb, refund_pb, topup_pb, transfer_pb

__all__ = [
    "SOURCE",
    "event_id",
    "object_events",
    "payment_events",
    "payout_events",
    "refund_events",
    "topup_events",
    "transfer_events",
]

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
