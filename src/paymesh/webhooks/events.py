"""The events webhooks consumes (every public event) and the one it publishes.

Consumed: :data:`~paymesh.contracts.events.TOPIC_PAYMENTS` and this service's own
:data:`~paymesh.contracts.events.TOPIC_WEBHOOKS`, in the consumer group
:data:`GROUP`; each event id is applied once (the inbox, consumer
:data:`CONSUMER`). Only the contract's public types
(:data:`~paymesh.contracts.events.PUBLIC_EVENT_TYPES`) are delivered; others
(internal ones, or types added later and not yet in this contract) are
skipped. The envelope is delivered as it came, fields this version does not
know included.

Published: ``webhook_endpoint.disabled`` on TOPIC_WEBHOOKS, keyed by the
endpoint id, when an endpoint has failed for ``webhooks.disable_after_s``; its
payload is ``webhooks.v1.EndpointDisabled``: ``data`` is
``{"id", "object": "webhook_endpoint", "url", "reason", "disabled_at"}``.
"""

from __future__ import annotations

from paymesh.contracts.events import (
    ENDPOINT_DISABLED,
    PUBLIC_EVENT_TYPES,
    TOPIC_PAYMENTS,
    TOPIC_WEBHOOKS,
    Event,
    format_time,
    new_event,
)
from paymesh.contracts.webhooks.v1.webhooks_pb2 import EndpointDisabled
from paymesh.platform.clock import new_id
from paymesh.webhooks.domain import Endpoint

__all__ = [
    "CONSUMED_TOPICS",
    "CONSUMER",
    "GROUP",
    "SOURCE",
    "TOPIC",
    "endpoint_disabled",
    "is_public",
    "reason_failing_since",
]

TOPIC = TOPIC_WEBHOOKS
SOURCE = "/paymesh/webhooks"
CONSUMED_TOPICS = (TOPIC_PAYMENTS, TOPIC_WEBHOOKS)
# The consumer group on the bus, and the consumer's name in the inbox.
GROUP = "webhooks"
CONSUMER = "webhooks.deliveries"


def is_public(event: Event) -> bool:
    """Whether merchants may receive `event` (a public type of a known tenant)."""
    return event.type in PUBLIC_EVENT_TYPES and bool(event.tenant)


def reason_failing_since(since_us: int) -> str:
    """The disabled reason of an endpoint failing since `since_us`."""
    return f"failing_since_{format_time(since_us)}"


def endpoint_disabled(endpoint: Endpoint, reason: str, *, now_us: int) -> Event:
    """The CloudEvent saying `endpoint` was disabled, keyed by its id."""
    payload = EndpointDisabled(
        id=endpoint.id,
        object="webhook_endpoint",
        url=endpoint.url,
        reason=reason,
        disabled_at=format_time(now_us),
    )
    return new_event(
        ENDPOINT_DISABLED,
        payload,
        event_id=new_id("evt"),
        source=SOURCE,
        subject=endpoint.id,
        time_us=now_us,
        tenant=endpoint.tenant_id,
    )
