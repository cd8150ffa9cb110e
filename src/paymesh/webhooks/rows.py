"""Rows of the webhooks tables to and from domain objects."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from paymesh.webhooks.domain import Delivery, DeliveryStatus, Endpoint, EndpointStatus

__all__ = [
    "EndpointRecord",
    "delivery_from_row",
    "delivery_row",
    "endpoint_from_row",
    "endpoint_row",
    "record_from_row",
]


@dataclass(frozen=True)
class EndpointRecord:
    """An endpoint with its sealed secrets."""

    endpoint: Endpoint
    secret_sealed: str
    previous_secret_sealed: str | None


def endpoint_row(record: EndpointRecord) -> dict[str, Any]:
    """The endpoints row of `record`."""
    ep = record.endpoint
    return {
        "id": ep.id,
        "tenant_id": ep.tenant_id,
        "url": ep.url,
        "events": json.dumps(list(ep.events)),
        "description": ep.description,
        "status": ep.status.value,
        "disabled_reason": ep.disabled_reason,
        "secret_sealed": record.secret_sealed,
        "previous_secret_sealed": record.previous_secret_sealed,
        "previous_secret_expires_at_us": ep.previous_secret_expires_at_us,
        "failing_since_us": ep.failing_since_us,
        "created_at_us": ep.created_at_us,
        "deleted_at_us": ep.deleted_at_us,
    }


def endpoint_from_row(row: Any) -> Endpoint:
    """The endpoint of an endpoints row."""
    return Endpoint(
        id=row["id"],
        tenant_id=row["tenant_id"],
        url=row["url"],
        events=tuple(json.loads(row["events"])),
        description=row["description"],
        status=EndpointStatus(row["status"]),
        created_at_us=row["created_at_us"],
        disabled_reason=row["disabled_reason"],
        previous_secret_expires_at_us=row["previous_secret_expires_at_us"],
        failing_since_us=row["failing_since_us"],
        deleted_at_us=row["deleted_at_us"],
    )


def record_from_row(row: Any) -> EndpointRecord:
    """The endpoint of an endpoints row, with its sealed secrets."""
    return EndpointRecord(
        endpoint_from_row(row), row["secret_sealed"], row["previous_secret_sealed"]
    )


def delivery_row(
    id_: str, endpoint_id: str, event_id: str, event_type: str, tenant_id: str, now_us: int
) -> dict[str, Any]:
    """A new pending delivery's row, due at `now_us`."""
    return {
        "id": id_,
        "endpoint_id": endpoint_id,
        "event_id": event_id,
        "event_type": event_type,
        "tenant_id": tenant_id,
        "status": DeliveryStatus.PENDING.value,
        "attempts_count": 0,
        "created_at_us": now_us,
        "next_attempt_at_us": now_us,
        "first_attempt_at_us": None,
        "lease_until_us": None,
    }


def delivery_from_row(row: Any) -> Delivery:
    """The delivery of a deliveries row (without its attempts)."""
    return Delivery(
        id=row["id"],
        endpoint_id=row["endpoint_id"],
        event_id=row["event_id"],
        event_type=row["event_type"],
        tenant_id=row["tenant_id"],
        status=DeliveryStatus(row["status"]),
        attempts_count=row["attempts_count"],
        created_at_us=row["created_at_us"],
        next_attempt_at_us=row["next_attempt_at_us"],
        first_attempt_at_us=row["first_attempt_at_us"],
    )
