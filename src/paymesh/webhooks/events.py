"""The events webhooks consumes (every public event) and the one it publishes.

Consumed: :data:`~paymesh.contracts.events.TOPIC_PAYMENTS` and this service's own
:data:`~paymesh.contracts.events.TOPIC_WEBHOOKS`, in the consumer group
:data:`GROUP`; each event id is applied once (the inbox, consumer
:data:`CONSUMER`). Only the contract's public types
(:data:`~paymesh.contracts.events.PUBLIC_EVENT_TYPES`) are delivered; others
(internal ones, or types added later and not yet in this contract) are
skipped. The envelope is delivered as it came, fields this version does not
know included.

:class:`Consumer` takes them in (:func:`~paymesh.webhooks.service.record_event`).

Published: ``webhook_endpoint.disabled`` on TOPIC_WEBHOOKS, keyed by the
endpoint id, when an endpoint has failed for ``webhooks.disable_after_s``; its
payload is ``webhooks.v1.EndpointDisabled``: ``data`` is
``{"id", "object": "webhook_endpoint", "url", "reason", "disabled_at"}``.
"""

from __future__ import annotations

import asyncio

from paymesh.contracts.events import (
    ENDPOINT_DISABLED,
    TOPIC_PAYMENTS,
    TOPIC_WEBHOOKS,
    Event,
    format_time,
    new_event,
)
from paymesh.contracts.webhooks.v1.webhooks_pb2 import EndpointDisabled
from paymesh.platform.clock import new_id
from paymesh.webhooks import service
from paymesh.webhooks.domain import Endpoint
from paymesh.webhooks.ports import Deps

__all__ = [
    "CONSUMED_TOPICS",
    "CONSUMER",
    "GROUP",
    "SOURCE",
    "TOPIC",
    "Consumer",
    "endpoint_disabled",
    "reason_failing_since",
]

TOPIC = TOPIC_WEBHOOKS
SOURCE = "/paymesh/webhooks"
CONSUMED_TOPICS = (TOPIC_PAYMENTS, TOPIC_WEBHOOKS)
# The consumer group on the bus, and the consumer's name in the inbox.
GROUP = "webhooks"
CONSUMER = "webhooks.deliveries"


class Consumer:
    """The consumer of :data:`CONSUMED_TOPICS`: each event recorded for its endpoints.

    Subscribed before the bus starts; it takes events in only between :meth:`start`
    and :meth:`stop`. An event delivered meanwhile waits (it is delivered from the
    bus's own task, which the bus cancels when it stops): a stopped service never
    acknowledges one, so it is delivered again.
    """

    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._running = asyncio.Event()

    async def handle(self, event: Event) -> None:
        """Record `event` (once per id), when the service runs."""
        await self._running.wait()
        await service.record_event(event, deps=self._deps)

    def start(self) -> None:
        """Take events in from now on."""
        self._running.set()

    def stop(self) -> None:
        """Hold the events delivered from now on, unacknowledged."""
        self._running.clear()


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
