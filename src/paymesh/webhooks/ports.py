"""What the webhooks use cases depend on: the store, the URL rules, the clock.

:class:`~paymesh.webhooks.store.SqlWebhooksStore` is the store; a DNS resolver
(:data:`~paymesh.webhooks.transport.Resolver`) checks a new endpoint's host.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from paymesh.contracts.events import Event
from paymesh.platform.clock import Clock
from paymesh.webhooks.domain import Delivery, Endpoint
from paymesh.webhooks.sealing import SecretBox
from paymesh.webhooks.transport import Resolver, system_resolver

__all__ = ["Deps", "EndpointPolicy", "EndpointRecord", "StoredEvent", "WebhooksStore"]


@dataclass(frozen=True)
class EndpointRecord:
    """An endpoint with its sealed secrets."""

    endpoint: Endpoint
    secret_sealed: str
    previous_secret_sealed: str | None


@dataclass(frozen=True)
class StoredEvent:
    """An event as received, to deliver (again)."""

    id: str
    tenant_id: str
    type: str
    payload: bytes


class WebhooksStore(Protocol):
    """Endpoints, the events received and their deliveries, as the use cases need them."""

    async def create_endpoint(self, record: EndpointRecord) -> tuple[EndpointRecord, bool]:
        """Insert `record` unless its id exists; return the stored record and whether new."""
        ...

    async def get_endpoint(self, endpoint_id: str) -> EndpointRecord | None:
        """The endpoint (deleted ones too), whoever's it is, or None."""
        ...

    async def list_endpoints(
        self, tenant_id: str, *, limit: int, starting_after: str
    ) -> tuple[list[Endpoint], bool]:
        """The tenant's live endpoints, newest first, after the cursor's id."""
        ...

    async def update_endpoint(
        self, endpoint_id: str, *, fail_pending: bool = False, **values: Any
    ) -> EndpointRecord:
        """Change columns of a live endpoint; optionally fail its pending deliveries."""
        ...

    async def record_event(self, event: Event, *, now_us: int) -> int | None:
        """Store `event` and create its deliveries, once per event id (None: seen before)."""
        ...

    async def get_event(self, event_id: str) -> StoredEvent | None:
        """A received event, whoever's it is, or None."""
        ...

    async def add_delivery(self, delivery: Delivery) -> Delivery:
        """Add a new delivery (a resend)."""
        ...

    async def list_deliveries(
        self, endpoint_id: str, *, limit: int, starting_after: str
    ) -> tuple[list[Delivery], bool]:
        """The endpoint's deliveries with their attempts, newest first, after the cursor."""
        ...


@dataclass(frozen=True)
class EndpointPolicy:
    """What endpoints may be made: the environment's URL rules, the default grace."""

    environment: str
    allow_private: bool
    rotation_grace_s: float


@dataclass(frozen=True)
class Deps:
    """What the webhooks use cases need."""

    store: WebhooksStore
    box: SecretBox
    policy: EndpointPolicy
    clock: Clock
    # Resolves a new endpoint's host, to check its addresses as a delivery would.
    resolver: Resolver = system_resolver
