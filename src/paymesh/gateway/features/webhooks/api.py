"""REST routes for webhook endpoints: create, list, get, delete, rotate the
secret, re-enable, the delivery log and resending an event.

Every route needs `webhooks:write`; the tenant is the caller's. A secret is
in two answers only (creation and rotation), marked `Cache-Control:
no-store`; an idempotent replay of them comes from the sealed record."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from starlette.responses import Response

from paymesh.contracts.webhooks.v1 import webhooks_pb2 as wpb
from paymesh.gateway.deps import Audit, Webhooks, json_out
from paymesh.gateway.domain import WEBHOOKS_WRITE
from paymesh.gateway.features.webhooks.schemas import (
    CreateWebhookEndpointIn,
    ResendEventIn,
    RotateSecretIn,
    WebhookDeliveryList,
    WebhookDeliveryOut,
    WebhookEndpointOut,
    WebhookEndpointWithSecretOut,
)
from paymesh.gateway.features.webhooks.views import delivery_view, endpoint_view, with_secret
from paymesh.gateway.idempotency import KeyedRequest
from paymesh.gateway.pages import (
    ITEMS_PROBLEMS,
    Gets,
    PageArgs,
    declare_reads,
    page_args,
    page_out,
)
from paymesh.gateway.reads import ENDPOINTS
from paymesh.gateway.routing import Routes
from paymesh.gateway.writes import Writes
from paymesh.platform.identity import Caller

__all__ = ["routes"]

routes = Routes(tag="webhooks")
gets = Gets(routes, WEBHOOKS_WRITE)
writes = Writes(routes, WEBHOOKS_WRITE, (400, 401, 403, 404, 409, 422, 429, 503))

_READ_ERRORS = (401, 403, 404, 422, 503)
_NO_STORE = {"Cache-Control": "no-store"}

DeliveryPage = Annotated[PageArgs, page_args("The last delivery id of the previous page.")]


@writes.create(
    "/v1/webhook_endpoints", WebhookEndpointWithSecretOut, summary="Create a webhook endpoint"
)
async def post_endpoint(
    body: CreateWebhookEndpointIn,
    caller: Caller,
    audit: Audit,
    keyed: KeyedRequest,
    webhooks: Webhooks,
) -> Response:
    """Deliver the tenant's events of the given types (or `*`) to `url`.

    The answer carries the endpoint's signing `secret`, **shown only here**:
    keep it to verify the `Paymesh-Signature` header of each delivery
    (HMAC-SHA256 over `timestamp + "." + body`, sent as `t=<unix>,v1=<hex>`).
    The URL must be `https` outside development and may not point at a
    private, loopback, link-local or metadata address.
    """
    made = await webhooks.call(
        webhooks.stub.CreateEndpoint,
        wpb.CreateEndpointRequest(
            id=keyed.object_id("we"),
            url=body.url,
            events=body.events,
            description=body.description or "",
        ),
        caller,
    )
    # The host only: a URL's path or query string may carry a token.
    host = urlsplit(body.url).hostname or ""
    await audit(caller, "webhook_endpoint.created", target=made.endpoint.id,
        details={"host": host, "events": list(body.events)},
    )  # fmt: skip
    headers = {**_NO_STORE, "Location": f"/v1/webhook_endpoints/{made.endpoint.id}"}
    return json_out(with_secret(made), 201, headers=headers)


declare_reads(routes, ENDPOINTS)


@routes.delete(
    "/v1/webhook_endpoints/{endpoint_id}",
    scope=WEBHOOKS_WRITE,
    summary="Delete a webhook endpoint",
    status_code=204,
    problems=_READ_ERRORS,
)
async def delete_endpoint(
    endpoint_id: str, caller: Caller, audit: Audit, webhooks: Webhooks
) -> Response:
    """Delete an endpoint: nothing more is delivered to it, pending deliveries stop."""
    await webhooks.call(
        webhooks.stub.DeleteEndpoint, wpb.DeleteEndpointRequest(id=endpoint_id), caller
    )
    await audit(caller, "webhook_endpoint.deleted", target=endpoint_id)
    return Response(status_code=204)


@writes.action(
    "/v1/webhook_endpoints/{endpoint_id}/rotate_secret",
    WebhookEndpointWithSecretOut,
    summary="Rotate a webhook endpoint's signing secret",
)
async def rotate_secret(
    endpoint_id: str,
    caller: Caller,
    audit: Audit,
    keyed: KeyedRequest,
    webhooks: Webhooks,
    body: RotateSecretIn | None = None,
) -> Response:
    """A new signing secret, **shown only here**.

    During the grace period (`grace_period_s`, default the configured one)
    deliveries carry two `v1=` signatures, one per secret, so verifiers that
    still hold the old secret keep working until they switch.
    """
    grace = body.grace_period_s if body is not None and body.grace_period_s else 0
    made = await webhooks.call(
        webhooks.stub.RotateSecret,
        wpb.RotateSecretRequest(id=endpoint_id, grace_period_s=grace),
        caller,
    )
    await audit(caller, "webhook_endpoint.secret_rotated", target=endpoint_id)
    return json_out(with_secret(made), headers=dict(_NO_STORE))


@writes.action(
    "/v1/webhook_endpoints/{endpoint_id}/enable",
    WebhookEndpointOut,
    summary="Re-enable a disabled webhook endpoint",
)
async def enable_endpoint(
    endpoint_id: str, caller: Caller, audit: Audit, keyed: KeyedRequest, webhooks: Webhooks
) -> Response:
    """Deliver to an endpoint again after it was disabled for failing."""
    endpoint = await webhooks.call(
        webhooks.stub.EnableEndpoint, wpb.EnableEndpointRequest(id=endpoint_id), caller
    )
    await audit(caller, "webhook_endpoint.enabled", target=endpoint_id)
    return json_out(endpoint_view(endpoint))


@gets.get(
    "/v1/webhook_endpoints/{endpoint_id}/deliveries",
    WebhookDeliveryList,
    summary="List an endpoint's deliveries",
    problems=ITEMS_PROBLEMS,
)
async def list_deliveries(
    endpoint_id: str, caller: Caller, webhooks: Webhooks, page: DeliveryPage
) -> Response:
    """The endpoint's delivery log, newest first: each attempt's status code and latency."""
    request = wpb.ListDeliveriesRequest(
        endpoint_id=endpoint_id, limit=page.limit, starting_after=page.starting_after
    )
    found = await webhooks.call(webhooks.stub.ListDeliveries, request, caller)
    return page_out(WebhookDeliveryList, delivery_view, found.data, found.has_more)


@writes.create(
    "/v1/webhook_endpoints/{endpoint_id}/deliveries/resend",
    WebhookDeliveryOut,
    summary="Deliver an event to the endpoint again",
)
async def resend_event(
    endpoint_id: str, body: ResendEventIn, caller: Caller, keyed: KeyedRequest, webhooks: Webhooks
) -> Response:
    """A new delivery of one of the tenant's events, with a fresh signature."""
    delivery = await webhooks.call(
        webhooks.stub.ResendEvent,
        wpb.ResendEventRequest(endpoint_id=endpoint_id, event_id=body.event_id),
        caller,
    )
    return json_out(delivery_view(delivery), 201)
