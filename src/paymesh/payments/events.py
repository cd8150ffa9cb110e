"""The events payments publishes, as CloudEvents on ``TOPIC_PAYMENTS``.

Each event is keyed by the object it is about (``subject``): the payment,
the refund (whose data names its payment), the top-up, the payout or the
transfer. Its id is derived
from the object id and the event type, so a replayed transition cannot make
a second, distinct event. ``data`` is the public object, with the field
names of the REST API.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from paymesh.contracts.events import Event, format_time
from paymesh.payments.domain import P2PTransfer, Payment, Payout, Refund, Topup

__all__ = [
    "SOURCE",
    "event_id",
    "object_events",
    "payment_data",
    "payment_events",
    "payout_data",
    "payout_events",
    "refund_data",
    "refund_events",
    "topup_data",
    "topup_events",
    "transfer_data",
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


def payment_data(p: Payment) -> dict[str, Any]:
    """The public form of a payment."""
    return {
        "id": p.id,
        "object": "payment",
        "status": p.status.value,
        "amount": p.amount,
        "currency": p.currency,
        "capture_method": p.capture_method.value,
        "amount_captured": p.amount_captured,
        "amount_refunded": p.amount_refunded,
        "fee": p.fee,
        "payer_account_id": p.payer_account_id,
        "payee_account_id": p.payee_account_id,
        "description": p.description,
        "metadata": dict(p.metadata),
        "risk": None
        if p.risk is None
        else {
            "decision": p.risk.decision,
            "score": p.risk.score,
            "reasons": list(p.risk.reasons),
            "rules_version": p.risk.rules_version,
        },
        "failure_code": p.failure_code or None,
        "failure_message": p.failure_message or None,
        "created_at": format_time(p.created_at_us),
        "updated_at": format_time(p.updated_at_us),
    }


def refund_data(r: Refund) -> dict[str, Any]:
    """The public form of a refund."""
    return {
        "id": r.id,
        "object": "refund",
        "payment_id": r.payment_id,
        "status": r.status.value,
        "amount": r.amount,
        "currency": r.currency,
        "reason": r.reason,
        "failure_code": r.failure_code or None,
        "created_at": format_time(r.created_at_us),
    }


def topup_data(t: Topup) -> dict[str, Any]:
    """The public form of a top-up."""
    return {
        "id": t.id,
        "object": "topup",
        "account_id": t.account_id,
        "status": t.status.value,
        "amount": t.amount,
        "currency": t.currency,
        "failure_code": t.failure_code or None,
        "created_at": format_time(t.created_at_us),
    }


def payout_data(p: Payout) -> dict[str, Any]:
    """The public form of a payout."""
    return {
        "id": p.id,
        "object": "payout",
        "account_id": p.account_id,
        "status": p.status.value,
        "amount": p.amount,
        "currency": p.currency,
        "failure_code": p.failure_code or None,
        "created_at": format_time(p.created_at_us),
    }


def transfer_data(t: P2PTransfer) -> dict[str, Any]:
    """The public form of a P2P transfer."""
    return {
        "id": t.id,
        "object": "transfer",
        "from_account_id": t.from_account_id,
        "to_account_id": t.to_account_id,
        "status": t.status.value,
        "amount": t.amount,
        "currency": t.currency,
        "failure_code": t.failure_code or None,
        "created_at": format_time(t.created_at_us),
    }


def object_events(
    object_id: str, tenant_id: str, data: dict[str, Any], types: Iterable[str], now_us: int
) -> list[Event]:
    """The events `types` about `object_id`, each carrying `data` (its public form)."""
    return [
        Event(
            id=event_id(object_id, t),
            source=SOURCE,
            type=t,
            subject=object_id,
            time=format_time(now_us),
            tenant=tenant_id,
            data=data,
        )
        for t in types
    ]


def payment_events(p: Payment, types: Iterable[str], now_us: int) -> list[Event]:
    """The events of a payment transition."""
    return object_events(p.id, p.tenant_id, payment_data(p), types, now_us)


def refund_events(r: Refund, types: Iterable[str], now_us: int) -> list[Event]:
    """The events of a refund transition."""
    return object_events(r.id, r.tenant_id, refund_data(r), types, now_us)


def topup_events(t: Topup, types: Iterable[str], now_us: int) -> list[Event]:
    """The events of a top-up transition."""
    return object_events(t.id, t.tenant_id, topup_data(t), types, now_us)


def payout_events(p: Payout, types: Iterable[str], now_us: int) -> list[Event]:
    """The events of a payout transition."""
    return object_events(p.id, p.tenant_id, payout_data(p), types, now_us)


def transfer_events(t: P2PTransfer, types: Iterable[str], now_us: int) -> list[Event]:
    """The events of a P2P transfer transition."""
    return object_events(t.id, t.tenant_id, transfer_data(t), types, now_us)
