"""The webhooks service's tables (SQLAlchemy Core), shared by the store and migrations,
and their rows to and from domain objects."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from paymesh.platform.outbox import inbox_table, outbox_table
from paymesh.platform.rows import attributes, columns
from paymesh.webhooks.domain import Attempt, Delivery, DeliveryStatus, Endpoint, EndpointStatus
from paymesh.webhooks.ports import EndpointRecord, StoredEvent

__all__ = [
    "attempts",
    "deliveries",
    "delivery_from_row",
    "delivery_row",
    "endpoint_from_row",
    "endpoint_row",
    "endpoints",
    "events",
    "inbox",
    "metadata",
    "outbox",
    "record_from_row",
]

metadata = sa.MetaData()

endpoints = sa.Table(
    "endpoints",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("url", sa.String(2048), nullable=False),
    # JSON list of event types, sorted; ["*"] for all.
    sa.Column("events", sa.Text, nullable=False),
    sa.Column("description", sa.String(500), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("disabled_reason", sa.String(128), nullable=False),
    # Sealed (AES-GCM) secrets; never the plain text.
    sa.Column("secret_sealed", sa.Text, nullable=False),
    sa.Column("previous_secret_sealed", sa.Text, nullable=True),
    sa.Column("previous_secret_expires_at_us", sa.BigInteger, nullable=True),
    # Start of the current run of failed attempts; NULL while healthy.
    sa.Column("failing_since_us", sa.BigInteger, nullable=True),
    sa.Column("created_at_us", sa.BigInteger, nullable=False),
    sa.Column("deleted_at_us", sa.BigInteger, nullable=True),
    sa.Index("ix_endpoints_tenant_created", "tenant_id", "created_at_us"),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("type", sa.String(64), nullable=False),
    # The CloudEvent exactly as delivered (Event.to_json()).
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("received_at_us", sa.BigInteger, nullable=False),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("endpoint_id", sa.String(64), nullable=False),
    sa.Column("event_id", sa.String(64), nullable=False),
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts_count", sa.Integer, nullable=False),
    sa.Column("created_at_us", sa.BigInteger, nullable=False),
    sa.Column("next_attempt_at_us", sa.BigInteger, nullable=False),
    sa.Column("first_attempt_at_us", sa.BigInteger, nullable=True),
    # While an attempt runs, the worker that claimed it holds it until then.
    sa.Column("lease_until_us", sa.BigInteger, nullable=True),
    sa.Index("ix_deliveries_due", "status", "next_attempt_at_us"),
    sa.Index("ix_deliveries_endpoint_created", "endpoint_id", "created_at_us"),
)

attempts = sa.Table(
    "attempts",
    metadata,
    sa.Column("delivery_id", sa.String(64), primary_key=True),
    sa.Column("number", sa.Integer, primary_key=True),
    sa.Column("started_at_us", sa.BigInteger, nullable=False),
    sa.Column("status_code", sa.Integer, nullable=False),
    sa.Column("latency_ms", sa.BigInteger, nullable=False),
    sa.Column("error", sa.String(64), nullable=False),
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)

# -- rows to and from domain objects -----------------------------------------

# Columns that hold a field of the same name, as it is.
_ENDPOINT_FIELDS = (
    "id",
    "tenant_id",
    "url",
    "description",
    "disabled_reason",
    "previous_secret_expires_at_us",
    "failing_since_us",
    "created_at_us",
    "deleted_at_us",
)
_DELIVERY_FIELDS = (
    "id",
    "endpoint_id",
    "event_id",
    "event_type",
    "tenant_id",
    "attempts_count",
    "created_at_us",
    "next_attempt_at_us",
    "first_attempt_at_us",
)


def endpoint_row(record: EndpointRecord) -> dict[str, Any]:
    """The endpoints row of `record`."""
    ep = record.endpoint
    return attributes(ep, _ENDPOINT_FIELDS) | {
        "events": json.dumps(list(ep.events)),
        "status": ep.status.value,
        "secret_sealed": record.secret_sealed,
        "previous_secret_sealed": record.previous_secret_sealed,
    }


def endpoint_from_row(row: Any) -> Endpoint:
    """The endpoint of an endpoints row."""
    return Endpoint(
        **columns(row, _ENDPOINT_FIELDS),
        events=tuple(json.loads(row["events"])),
        status=EndpointStatus(row["status"]),
    )


def record_from_row(row: Any) -> EndpointRecord:
    """The endpoint of an endpoints row, with its sealed secrets."""
    return EndpointRecord(
        endpoint_from_row(row), row["secret_sealed"], row["previous_secret_sealed"]
    )


def delivery_row(delivery: Delivery) -> dict[str, Any]:
    """The deliveries row of `delivery` (its attempts are rows of their own), not leased."""
    return attributes(delivery, _DELIVERY_FIELDS) | {
        "status": delivery.status.value,
        "lease_until_us": None,
    }


def delivery_from_row(row: Any) -> Delivery:
    """The delivery of a deliveries row (without its attempts)."""
    return Delivery(**columns(row, _DELIVERY_FIELDS), status=DeliveryStatus(row["status"]))


def event_from_row(row: Any) -> StoredEvent:
    """The received event a row of `events` holds."""
    return StoredEvent(row.id, row.tenant_id, row.type, row.payload.encode())


def attempt_from_row(row: Any) -> Attempt:
    """The attempt a row of `attempts` holds."""
    return Attempt(row.number, row.started_at_us, row.status_code, row.latency_ms, row.error)
