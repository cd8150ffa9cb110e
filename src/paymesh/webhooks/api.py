"""The gRPC servicer ``paymesh.webhooks.v1.Webhooks``: protobuf in and out. The tenant
is always the caller's (metadata); another tenant's endpoint or event answers
NOT_FOUND. A :class:`~paymesh.webhooks.errors.WebhooksError` ends the call with its
status (the server maps it)."""

from __future__ import annotations

import grpc

from paymesh.contracts.webhooks.v1 import webhooks_pb2, webhooks_pb2_grpc
from paymesh.platform.rpc import require_caller
from paymesh.webhooks import service
from paymesh.webhooks.domain import (
    CreateEndpoint,
    Delivery,
    DeliveryStatus,
    Endpoint,
    EndpointStatus,
)
from paymesh.webhooks.ports import Deps

__all__ = ["SERVICE_NAME", "WebhooksServicer", "delivery_to_proto", "endpoint_to_proto"]

SERVICE_NAME = webhooks_pb2.DESCRIPTOR.services_by_name["Webhooks"].full_name

_ENDPOINT_STATUS = {
    EndpointStatus.ENABLED: webhooks_pb2.ENDPOINT_STATUS_ENABLED,
    EndpointStatus.DISABLED: webhooks_pb2.ENDPOINT_STATUS_DISABLED,
}
_DELIVERY_STATUS = {
    DeliveryStatus.PENDING: webhooks_pb2.DELIVERY_STATUS_PENDING,
    DeliveryStatus.SUCCEEDED: webhooks_pb2.DELIVERY_STATUS_SUCCEEDED,
    DeliveryStatus.FAILED: webhooks_pb2.DELIVERY_STATUS_FAILED,
}

Context = grpc.aio.ServicerContext[object, object]


class WebhooksServicer(webhooks_pb2_grpc.WebhooksServicer):
    """Endpoint management and the delivery log: the use cases, for the caller."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    def _endpoint(self, endpoint: Endpoint) -> webhooks_pb2.Endpoint:
        return endpoint_to_proto(endpoint, self._deps.clock.now_us())

    def _with_secret(self, endpoint: Endpoint, secret: str) -> webhooks_pb2.EndpointWithSecret:
        return webhooks_pb2.EndpointWithSecret(endpoint=self._endpoint(endpoint), secret=secret)

    async def CreateEndpoint(
        self, request: webhooks_pb2.CreateEndpointRequest, context: Context
    ) -> webhooks_pb2.EndpointWithSecret:
        """Make an endpoint (idempotent by id); the answer carries its secret."""
        caller = await require_caller(context)
        cmd = CreateEndpoint(
            id=request.id,
            tenant_id=caller.tenant_id,
            url=request.url,
            events=tuple(request.events),
            description=request.description,
        )
        return self._with_secret(
            *await service.create_endpoint(cmd, caller=caller, deps=self._deps)
        )

    async def GetEndpoint(
        self, request: webhooks_pb2.GetEndpointRequest, context: Context
    ) -> webhooks_pb2.Endpoint:
        """One of the caller's endpoints."""
        caller = await require_caller(context)
        return self._endpoint(
            await service.get_endpoint(request.id, caller=caller, deps=self._deps)
        )

    async def ListEndpoints(
        self, request: webhooks_pb2.ListEndpointsRequest, context: Context
    ) -> webhooks_pb2.ListEndpointsResponse:
        """The caller's endpoints, newest first."""
        caller = await require_caller(context)
        found, more = await service.list_endpoints(
            request.limit, request.starting_after, caller=caller, deps=self._deps
        )
        return webhooks_pb2.ListEndpointsResponse(
            data=[self._endpoint(e) for e in found], has_more=more
        )

    async def DeleteEndpoint(
        self, request: webhooks_pb2.DeleteEndpointRequest, context: Context
    ) -> webhooks_pb2.Endpoint:
        """Delete one of the caller's endpoints; its pending deliveries stop."""
        caller = await require_caller(context)
        return self._endpoint(
            await service.delete_endpoint(request.id, caller=caller, deps=self._deps)
        )

    async def RotateSecret(
        self, request: webhooks_pb2.RotateSecretRequest, context: Context
    ) -> webhooks_pb2.EndpointWithSecret:
        """A new secret for one of the caller's endpoints; the old one signs for the grace."""
        caller = await require_caller(context)
        return self._with_secret(
            *await service.rotate_secret(
                request.id, request.grace_period_s, caller=caller, deps=self._deps
            )
        )

    async def EnableEndpoint(
        self, request: webhooks_pb2.EnableEndpointRequest, context: Context
    ) -> webhooks_pb2.Endpoint:
        """Enable one of the caller's endpoints again."""
        caller = await require_caller(context)
        return self._endpoint(
            await service.enable_endpoint(request.id, caller=caller, deps=self._deps)
        )

    async def DisableEndpoint(
        self, request: webhooks_pb2.DisableEndpointRequest, context: Context
    ) -> webhooks_pb2.Endpoint:
        """Stop delivering to one of the caller's endpoints until it is enabled again."""
        caller = await require_caller(context)
        return self._endpoint(
            await service.disable_endpoint(request.id, caller=caller, deps=self._deps)
        )

    async def ListDeliveries(
        self, request: webhooks_pb2.ListDeliveriesRequest, context: Context
    ) -> webhooks_pb2.ListDeliveriesResponse:
        """The delivery log of one of the caller's endpoints, newest first."""
        caller = await require_caller(context)
        found, more = await service.list_deliveries(
            request.endpoint_id,
            request.limit,
            request.starting_after,
            caller=caller,
            deps=self._deps,
        )
        return webhooks_pb2.ListDeliveriesResponse(
            data=[delivery_to_proto(d) for d in found], has_more=more
        )

    async def ResendEvent(
        self, request: webhooks_pb2.ResendEventRequest, context: Context
    ) -> webhooks_pb2.Delivery:
        """Deliver one of the caller's events to one of its endpoints again."""
        caller = await require_caller(context)
        return delivery_to_proto(
            await service.resend_event(
                request.endpoint_id, request.event_id, caller=caller, deps=self._deps
            )
        )


def endpoint_to_proto(endpoint: Endpoint, now_us: int) -> webhooks_pb2.Endpoint:
    """The wire form of an endpoint (never its secret); an expired previous secret is 0."""
    expires = endpoint.previous_secret_expires_at_us or 0
    return webhooks_pb2.Endpoint(
        id=endpoint.id,
        tenant_id=endpoint.tenant_id,
        url=endpoint.url,
        events=list(endpoint.events),
        status=_ENDPOINT_STATUS[endpoint.status],
        description=endpoint.description,
        created_at_us=endpoint.created_at_us,
        disabled_reason=endpoint.disabled_reason,
        previous_secret_expires_at_us=expires if expires > now_us else 0,
    )


def delivery_to_proto(delivery: Delivery) -> webhooks_pb2.Delivery:
    """The wire form of a delivery with its attempts."""
    pending = delivery.status is DeliveryStatus.PENDING
    return webhooks_pb2.Delivery(
        id=delivery.id,
        endpoint_id=delivery.endpoint_id,
        event_id=delivery.event_id,
        event_type=delivery.event_type,
        status=_DELIVERY_STATUS[delivery.status],
        attempts_count=delivery.attempts_count,
        created_at_us=delivery.created_at_us,
        next_attempt_at_us=delivery.next_attempt_at_us if pending else 0,
        attempts=[
            webhooks_pb2.Attempt(
                number=a.number,
                started_at_us=a.started_at_us,
                status_code=a.status_code,
                latency_ms=a.latency_ms,
                error=a.error,
            )
            for a in delivery.attempts
        ],
    )
