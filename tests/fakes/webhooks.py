"""The webhooks service in memory, called like its generated stub."""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass, field

import grpc

from paymesh.contracts.webhooks.v1 import webhooks_pb2 as wpb
from paymesh.platform.identity import Caller
from tests.fakes import rpc, rpc_error

__all__ = ["T0", "FakeWebhooks"]

T0 = 1_700_000_000_000_000


@dataclass
class _Stored:
    tenant_id: str
    endpoint: wpb.Endpoint
    secret: str


@dataclass
class FakeWebhooks:
    """The webhooks service in memory: per-tenant endpoints, secrets, a delivery log."""

    endpoints: dict[str, _Stored] = field(default_factory=dict)
    deliveries: dict[str, list[wpb.Delivery]] = field(default_factory=dict)
    # (method name, request) of every call, in order.
    calls: list[tuple[str, object]] = field(default_factory=list)
    _seq: itertools.count[int] = field(default_factory=itertools.count)

    def _mine(self, endpoint_id: str, caller: Caller) -> _Stored:
        stored = self.endpoints.get(endpoint_id)
        if stored is None or stored.tenant_id != caller.tenant_id:
            raise rpc_error(
                grpc.StatusCode.NOT_FOUND, "webhook_endpoint_not_found", "no such webhook endpoint"
            )
        return stored

    @rpc
    async def CreateEndpoint(
        self, request: wpb.CreateEndpointRequest, *, caller: Caller
    ) -> wpb.EndpointWithSecret:
        self.calls.append(("create_endpoint", request))
        if "127.0.0.1" in request.url:
            raise rpc_error(
                grpc.StatusCode.INVALID_ARGUMENT,
                "invalid_request",
                "url points at a private address",
            )
        existing = self.endpoints.get(request.id)
        if existing is not None:
            if existing.tenant_id != caller.tenant_id:
                raise rpc_error(
                    grpc.StatusCode.FAILED_PRECONDITION, "id_taken", "id used by another tenant"
                )
            return wpb.EndpointWithSecret(endpoint=existing.endpoint, secret=existing.secret)
        endpoint = wpb.Endpoint(
            id=request.id,
            tenant_id=caller.tenant_id,
            url=request.url,
            events=sorted(set(request.events)),
            status=wpb.ENDPOINT_STATUS_ENABLED,
            description=request.description,
            created_at_us=T0 + next(self._seq),
        )
        secret = "whsec_" + secrets.token_urlsafe(24)
        self.endpoints[request.id] = _Stored(caller.tenant_id, endpoint, secret)
        return wpb.EndpointWithSecret(endpoint=endpoint, secret=secret)

    @rpc
    async def GetEndpoint(self, request: wpb.GetEndpointRequest, *, caller: Caller) -> wpb.Endpoint:
        self.calls.append(("get_endpoint", request))
        return self._mine(request.id, caller).endpoint

    @rpc
    async def ListEndpoints(
        self, request: wpb.ListEndpointsRequest, *, caller: Caller
    ) -> wpb.ListEndpointsResponse:
        self.calls.append(("list_endpoints", request))
        mine = sorted(
            (s.endpoint for s in self.endpoints.values() if s.tenant_id == caller.tenant_id),
            key=lambda e: e.created_at_us,
            reverse=True,
        )
        if request.starting_after:
            ids = [e.id for e in mine]
            mine = mine[ids.index(request.starting_after) + 1 :]
        return wpb.ListEndpointsResponse(
            data=mine[: request.limit], has_more=len(mine) > request.limit
        )

    @rpc
    async def DeleteEndpoint(
        self, request: wpb.DeleteEndpointRequest, *, caller: Caller
    ) -> wpb.Endpoint:
        self.calls.append(("delete_endpoint", request))
        stored = self._mine(request.id, caller)
        del self.endpoints[request.id]
        return stored.endpoint

    @rpc
    async def RotateSecret(
        self, request: wpb.RotateSecretRequest, *, caller: Caller
    ) -> wpb.EndpointWithSecret:
        self.calls.append(("rotate_secret", request))
        stored = self._mine(request.id, caller)
        grace_s = request.grace_period_s or 86_400  # the "configured default"
        stored.endpoint.previous_secret_expires_at_us = T0 + grace_s * 1_000_000
        stored.secret = "whsec_" + secrets.token_urlsafe(24)
        return wpb.EndpointWithSecret(endpoint=stored.endpoint, secret=stored.secret)

    @rpc
    async def EnableEndpoint(
        self, request: wpb.EnableEndpointRequest, *, caller: Caller
    ) -> wpb.Endpoint:
        self.calls.append(("enable_endpoint", request))
        stored = self._mine(request.id, caller)
        stored.endpoint.status = wpb.ENDPOINT_STATUS_ENABLED
        stored.endpoint.disabled_reason = ""
        return stored.endpoint

    @rpc
    async def ListDeliveries(
        self, request: wpb.ListDeliveriesRequest, *, caller: Caller
    ) -> wpb.ListDeliveriesResponse:
        self.calls.append(("list_deliveries", request))
        self._mine(request.endpoint_id, caller)
        log = self.deliveries.get(request.endpoint_id, [])
        return wpb.ListDeliveriesResponse(
            data=log[: request.limit], has_more=len(log) > request.limit
        )

    @rpc
    async def ResendEvent(self, request: wpb.ResendEventRequest, *, caller: Caller) -> wpb.Delivery:
        self.calls.append(("resend_event", request))
        self._mine(request.endpoint_id, caller)
        if not request.event_id.startswith("evt_"):
            raise rpc_error(grpc.StatusCode.NOT_FOUND, "event_not_found", "no such event")
        delivery = wpb.Delivery(
            id=f"dlv_{next(self._seq)}",
            endpoint_id=request.endpoint_id,
            event_id=request.event_id,
            event_type="payment.succeeded",
            status=wpb.DELIVERY_STATUS_PENDING,
            created_at_us=T0,
            next_attempt_at_us=T0,
        )
        self.deliveries.setdefault(request.endpoint_id, []).insert(0, delivery)
        return delivery
