"""REST routes for webhook endpoints: create, list, get, delete, rotate the
secret, re-enable, the delivery log and resending an event.

Every route needs `webhooks:write`; the tenant is the caller's. A secret is
in two answers only (creation and rotation), marked `Cache-Control:
no-store`; an idempotent replay of them comes from the sealed record."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from paymesh.contracts.webhooks.v1 import webhooks_pb2 as wpb
from paymesh.gateway.backends import WebhooksBackend
from paymesh.gateway.deps import IdempotencyKey, audit, gateway, json_out, keyed, scoped
from paymesh.gateway.errors import (
    ServiceUnavailable,
)
from paymesh.gateway.features.webhooks.schemas import (
    CreateWebhookEndpointIn,
    ResendEventIn,
    RotateSecretIn,
    WebhookDeliveryList,
    WebhookDeliveryOut,
    WebhookEndpointList,
    WebhookEndpointOut,
    WebhookEndpointWithSecretOut,
)
from paymesh.gateway.features.webhooks.views import delivery_view, endpoint_view, with_secret
from paymesh.gateway.problems import problem_responses
from paymesh.platform.identity import Caller

__all__ = ["router"]

router = APIRouter()


_WRITE_ERRORS = problem_responses(400, 401, 403, 404, 409, 422, 429, 503)

_READ_ERRORS = problem_responses(401, 403, 404, 422, 503)

_NO_STORE = {"Cache-Control": "no-store"}

Limit = Annotated[int, Query(ge=1, le=100, description="Page size, 1-100.")]


def _webhooks(request: Request) -> WebhooksBackend:
    backend = gateway(request).webhooks
    if backend is None:
        raise ServiceUnavailable("the webhooks service is not configured")
    return backend


@router.post(
    "/v1/webhook_endpoints",
    tags=["webhooks"],
    summary="Create a webhook endpoint",
    status_code=201,
    response_model=WebhookEndpointWithSecretOut,
    responses=_WRITE_ERRORS,
)
async def post_endpoint(
    body: CreateWebhookEndpointIn,
    request: Request,
    idempotency_key: IdempotencyKey = None,
    caller: Caller = scoped("POST", "/v1/webhook_endpoints"),
) -> Response:
    """Deliver the tenant's events of the given types (or `*`) to `url`.

    The answer carries the endpoint's signing `secret`, **shown only here**:
    keep it to verify the `Paymesh-Signature` header of each delivery
    (HMAC-SHA256 over `timestamp + "." + body`, sent as `t=<unix>,v1=<hex>`).
    The URL must be `https` outside development and may not point at a
    private, loopback, link-local or metadata address.
    """
    backend = _webhooks(request)
    req = await keyed(request, caller, idempotency_key)

    async def run() -> Response:
        made = await backend.create_endpoint(
            wpb.CreateEndpointRequest(
                id=req.object_id("we"),
                url=body.url,
                events=body.events,
                description=body.description or "",
            ),
            caller=caller,
        )
        # The host only: a URL's path or query string may carry a token.
        host = urlsplit(body.url).hostname or ""
        await audit(
            request, caller, "webhook_endpoint.created", target=made.endpoint.id,
            details={"host": host, "events": list(body.events)},
        )  # fmt: skip
        headers = {**_NO_STORE, "Location": f"/v1/webhook_endpoints/{made.endpoint.id}"}
        return json_out(with_secret(made), 201, headers=headers)

    return await req.run(run)


@router.get(
    "/v1/webhook_endpoints",
    tags=["webhooks"],
    summary="List webhook endpoints",
    response_model=WebhookEndpointList,
    responses=problem_responses(401, 403, 422, 503),
)
async def list_endpoints(
    request: Request,
    limit: Limit = 10,
    starting_after: Annotated[
        str | None, Query(max_length=64, description="The last endpoint id of the previous page.")
    ] = None,
    caller: Caller = scoped("GET", "/v1/webhook_endpoints"),
) -> Response:
    """The tenant's webhook endpoints, newest first (without their secrets)."""
    page = await _webhooks(request).list_endpoints(
        wpb.ListEndpointsRequest(limit=limit, starting_after=starting_after or ""), caller=caller
    )
    return json_out(
        WebhookEndpointList(data=[endpoint_view(e) for e in page.data], has_more=page.has_more)
    )


@router.get(
    "/v1/webhook_endpoints/{endpoint_id}",
    tags=["webhooks"],
    summary="Get a webhook endpoint",
    response_model=WebhookEndpointOut,
    responses=_READ_ERRORS,
)
async def get_endpoint(
    endpoint_id: str,
    request: Request,
    caller: Caller = scoped("GET", "/v1/webhook_endpoints/{endpoint_id}"),
) -> Response:
    """An endpoint of the tenant (another tenant's is a 404), without its secret."""
    endpoint = await _webhooks(request).get_endpoint(
        wpb.GetEndpointRequest(id=endpoint_id), caller=caller
    )
    return json_out(endpoint_view(endpoint))


@router.delete(
    "/v1/webhook_endpoints/{endpoint_id}",
    tags=["webhooks"],
    summary="Delete a webhook endpoint",
    status_code=204,
    responses=_READ_ERRORS,
)
async def delete_endpoint(
    endpoint_id: str,
    request: Request,
    caller: Caller = scoped("DELETE", "/v1/webhook_endpoints/{endpoint_id}"),
) -> Response:
    """Delete an endpoint: nothing more is delivered to it, pending deliveries stop."""
    await _webhooks(request).delete_endpoint(
        wpb.DeleteEndpointRequest(id=endpoint_id), caller=caller
    )
    await audit(request, caller, "webhook_endpoint.deleted", target=endpoint_id)
    return Response(status_code=204)


@router.post(
    "/v1/webhook_endpoints/{endpoint_id}/rotate_secret",
    tags=["webhooks"],
    summary="Rotate a webhook endpoint's signing secret",
    response_model=WebhookEndpointWithSecretOut,
    responses=_WRITE_ERRORS,
)
async def rotate_secret(
    endpoint_id: str,
    request: Request,
    body: RotateSecretIn | None = None,
    idempotency_key: IdempotencyKey = None,
    caller: Caller = scoped("POST", "/v1/webhook_endpoints/{endpoint_id}/rotate_secret"),
) -> Response:
    """A new signing secret, **shown only here**.

    During the grace period (`grace_period_s`, default the configured one)
    deliveries carry two `v1=` signatures, one per secret, so verifiers that
    still hold the old secret keep working until they switch.
    """
    backend = _webhooks(request)
    req = await keyed(request, caller, idempotency_key)

    async def run() -> Response:
        grace = body.grace_period_s if body is not None and body.grace_period_s else 0
        made = await backend.rotate_secret(
            wpb.RotateSecretRequest(id=endpoint_id, grace_period_s=grace), caller=caller
        )
        await audit(request, caller, "webhook_endpoint.secret_rotated", target=endpoint_id)
        return json_out(with_secret(made), headers=dict(_NO_STORE))

    return await req.run(run)


@router.post(
    "/v1/webhook_endpoints/{endpoint_id}/enable",
    tags=["webhooks"],
    summary="Re-enable a disabled webhook endpoint",
    response_model=WebhookEndpointOut,
    responses=_WRITE_ERRORS,
)
async def enable_endpoint(
    endpoint_id: str,
    request: Request,
    idempotency_key: IdempotencyKey = None,
    caller: Caller = scoped("POST", "/v1/webhook_endpoints/{endpoint_id}/enable"),
) -> Response:
    """Deliver to an endpoint again after it was disabled for failing."""
    backend = _webhooks(request)
    req = await keyed(request, caller, idempotency_key)

    async def run() -> Response:
        endpoint = await backend.enable_endpoint(
            wpb.EnableEndpointRequest(id=endpoint_id), caller=caller
        )
        await audit(request, caller, "webhook_endpoint.enabled", target=endpoint_id)
        return json_out(endpoint_view(endpoint))

    return await req.run(run)


@router.get(
    "/v1/webhook_endpoints/{endpoint_id}/deliveries",
    tags=["webhooks"],
    summary="List an endpoint's deliveries",
    response_model=WebhookDeliveryList,
    responses=_READ_ERRORS,
)
async def list_deliveries(
    endpoint_id: str,
    request: Request,
    limit: Limit = 10,
    starting_after: Annotated[
        str | None, Query(max_length=64, description="The last delivery id of the previous page.")
    ] = None,
    caller: Caller = scoped("GET", "/v1/webhook_endpoints/{endpoint_id}/deliveries"),
) -> Response:
    """The endpoint's delivery log, newest first: each attempt's status code and latency."""
    page = await _webhooks(request).list_deliveries(
        wpb.ListDeliveriesRequest(
            endpoint_id=endpoint_id, limit=limit, starting_after=starting_after or ""
        ),
        caller=caller,
    )
    return json_out(
        WebhookDeliveryList(data=[delivery_view(d) for d in page.data], has_more=page.has_more)
    )


@router.post(
    "/v1/webhook_endpoints/{endpoint_id}/deliveries/resend",
    tags=["webhooks"],
    summary="Deliver an event to the endpoint again",
    status_code=201,
    response_model=WebhookDeliveryOut,
    responses=_WRITE_ERRORS,
)
async def resend_event(
    endpoint_id: str,
    body: ResendEventIn,
    request: Request,
    idempotency_key: IdempotencyKey = None,
    caller: Caller = scoped("POST", "/v1/webhook_endpoints/{endpoint_id}/deliveries/resend"),
) -> Response:
    """A new delivery of one of the tenant's events, with a fresh signature."""
    backend = _webhooks(request)
    req = await keyed(request, caller, idempotency_key)

    async def run() -> Response:
        delivery = await backend.resend_event(
            wpb.ResendEventRequest(endpoint_id=endpoint_id, event_id=body.event_id),
            caller=caller,
        )
        return json_out(delivery_view(delivery), 201)

    return await req.run(run)
