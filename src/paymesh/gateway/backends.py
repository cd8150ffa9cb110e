"""Ports to the services behind the gateway, and their gRPC adapters.

The ports speak the services' protobuf messages; each call carries the
caller. An adapter turns a failed call into :class:`UpstreamError` with the
service's stable error code, so the routes never see gRPC.

Each call has the fixed deadline the adapter was built with; inside
:func:`calls_may_wait_until` (work the gateway admitted) it may take until the
given moment instead, when that is later.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol, TypeVar

import grpc

from paymesh.contracts.accounts.v1 import accounts_pb2 as apb
from paymesh.contracts.accounts.v1 import accounts_pb2_grpc
from paymesh.contracts.payments.v1 import payments_pb2 as ppb
from paymesh.contracts.payments.v1 import payments_pb2_grpc
from paymesh.contracts.risk.v1 import risk_pb2 as rpb
from paymesh.contracts.risk.v1 import risk_pb2_grpc
from paymesh.contracts.webhooks.v1 import webhooks_pb2 as wpb
from paymesh.contracts.webhooks.v1 import webhooks_pb2_grpc
from paymesh.gateway.domain import upstream_status
from paymesh.gateway.errors import ServiceUnavailable, UpstreamError
from paymesh.platform.identity import Caller
from paymesh.platform.rpc import caller_options, error_code

__all__ = [
    "AccountsBackend",
    "GrpcAccounts",
    "GrpcPayments",
    "GrpcRisk",
    "GrpcWebhooks",
    "PaymentsBackend",
    "RiskBackend",
    "WebhooksBackend",
    "calls_may_wait_until",
]

_Resp = TypeVar("_Resp")

_DEFAULT_CODES = {
    404: "not_found",
    409: "conflict",
    422: "validation_error",
    401: "unauthenticated",
    403: "forbidden",
    429: "rate_limited",
    503: "service_unavailable",
}


class AccountsBackend(Protocol):
    """The accounts service as the gateway uses it."""

    async def create_accounts(
        self, request: apb.CreateAccountsRequest, *, caller: Caller
    ) -> apb.CreateAccountsResponse: ...

    async def lookup_accounts(
        self, request: apb.LookupAccountsRequest, *, caller: Caller
    ) -> apb.LookupAccountsResponse: ...

    async def list_entries(
        self, request: apb.ListEntriesRequest, *, caller: Caller
    ) -> apb.ListEntriesResponse: ...

    async def list_accounts(
        self, request: apb.ListAccountsRequest, *, caller: Caller
    ) -> apb.ListAccountsResponse: ...


class PaymentsBackend(Protocol):
    """The payments service as the gateway uses it."""

    async def create_payment(
        self, request: ppb.CreatePaymentRequest, *, caller: Caller
    ) -> ppb.Payment: ...

    async def get_payment(
        self, request: ppb.GetPaymentRequest, *, caller: Caller
    ) -> ppb.Payment: ...

    async def list_payments(
        self, request: ppb.ListPaymentsRequest, *, caller: Caller
    ) -> ppb.ListPaymentsResponse: ...

    async def capture_payment(
        self, request: ppb.CapturePaymentRequest, *, caller: Caller
    ) -> ppb.Payment: ...

    async def cancel_payment(
        self, request: ppb.CancelPaymentRequest, *, caller: Caller
    ) -> ppb.Payment: ...

    async def create_refund(
        self, request: ppb.CreateRefundRequest, *, caller: Caller
    ) -> ppb.Refund: ...

    async def get_refund(self, request: ppb.GetRefundRequest, *, caller: Caller) -> ppb.Refund: ...

    async def list_refunds(
        self, request: ppb.ListRefundsRequest, *, caller: Caller
    ) -> ppb.ListRefundsResponse: ...

    async def create_topup(
        self, request: ppb.CreateTopupRequest, *, caller: Caller
    ) -> ppb.Topup: ...

    async def get_topup(self, request: ppb.GetTopupRequest, *, caller: Caller) -> ppb.Topup: ...

    async def list_topups(
        self, request: ppb.ListTopupsRequest, *, caller: Caller
    ) -> ppb.ListTopupsResponse: ...

    async def reverse_topup(
        self, request: ppb.ReverseTopupRequest, *, caller: Caller
    ) -> ppb.TopupReversal: ...

    async def create_payout(
        self, request: ppb.CreatePayoutRequest, *, caller: Caller
    ) -> ppb.Payout: ...

    async def get_payout(self, request: ppb.GetPayoutRequest, *, caller: Caller) -> ppb.Payout: ...

    async def list_payouts(
        self, request: ppb.ListPayoutsRequest, *, caller: Caller
    ) -> ppb.ListPayoutsResponse: ...

    async def create_transfer(
        self, request: ppb.CreateTransferRequest, *, caller: Caller
    ) -> ppb.Transfer: ...

    async def get_transfer(
        self, request: ppb.GetTransferRequest, *, caller: Caller
    ) -> ppb.Transfer: ...

    async def list_transfers(
        self, request: ppb.ListTransfersRequest, *, caller: Caller
    ) -> ppb.ListTransfersResponse: ...

    async def set_tenant_fees(
        self, request: ppb.SetTenantFeesRequest, *, caller: Caller
    ) -> ppb.TenantFees: ...

    async def list_events(
        self, request: ppb.ListEventsRequest, *, caller: Caller
    ) -> ppb.ListEventsResponse: ...

    async def get_event(self, request: ppb.GetEventRequest, *, caller: Caller) -> ppb.Event: ...


class RiskBackend(Protocol):
    """The risk service as the gateway uses it: rules, lists and the review queue."""

    async def get_rules(self, request: rpb.GetRulesRequest, *, caller: Caller) -> rpb.RulesInfo: ...

    async def add_list_entry(
        self, request: rpb.AddListEntryRequest, *, caller: Caller
    ) -> rpb.ListEntry: ...

    async def remove_list_entry(
        self, request: rpb.RemoveListEntryRequest, *, caller: Caller
    ) -> rpb.RemoveListEntryResponse: ...

    async def list_list_entries(
        self, request: rpb.ListListEntriesRequest, *, caller: Caller
    ) -> rpb.ListListEntriesResponse: ...

    async def list_reviews(
        self, request: rpb.ListReviewsRequest, *, caller: Caller
    ) -> rpb.ListReviewsResponse: ...

    async def get_review(self, request: rpb.GetReviewRequest, *, caller: Caller) -> rpb.Review: ...

    async def resolve_review(
        self, request: rpb.ResolveReviewRequest, *, caller: Caller
    ) -> rpb.Review: ...


class WebhooksBackend(Protocol):
    """The webhooks service as the gateway uses it: endpoints and their deliveries."""

    async def create_endpoint(
        self, request: wpb.CreateEndpointRequest, *, caller: Caller
    ) -> wpb.EndpointWithSecret: ...

    async def get_endpoint(
        self, request: wpb.GetEndpointRequest, *, caller: Caller
    ) -> wpb.Endpoint: ...

    async def list_endpoints(
        self, request: wpb.ListEndpointsRequest, *, caller: Caller
    ) -> wpb.ListEndpointsResponse: ...

    async def delete_endpoint(
        self, request: wpb.DeleteEndpointRequest, *, caller: Caller
    ) -> wpb.Endpoint: ...

    async def rotate_secret(
        self, request: wpb.RotateSecretRequest, *, caller: Caller
    ) -> wpb.EndpointWithSecret: ...

    async def enable_endpoint(
        self, request: wpb.EnableEndpointRequest, *, caller: Caller
    ) -> wpb.Endpoint: ...

    async def list_deliveries(
        self, request: wpb.ListDeliveriesRequest, *, caller: Caller
    ) -> wpb.ListDeliveriesResponse: ...

    async def resend_event(
        self, request: wpb.ResendEventRequest, *, caller: Caller
    ) -> wpb.Delivery: ...


def upstream_error(exc: grpc.aio.AioRpcError) -> UpstreamError | ServiceUnavailable:
    """The gateway error for a failed call to a service."""
    status = upstream_status(exc.code().name)
    if status == 503:
        return ServiceUnavailable("a service is unavailable, retry later")
    code = error_code(exc) or _DEFAULT_CODES.get(status, "upstream_error")
    detail = exc.details() or code
    if status >= 500:
        detail = "a service failed"  # its message may say more than a client should see
    return UpstreamError(status, code, detail)


# time.monotonic() seconds until which the calls of this task may wait (None: their own deadline).
_WAIT_UNTIL: ContextVar[float | None] = ContextVar("paymesh_gateway_wait_until", default=None)


@contextmanager
def calls_may_wait_until(moment: float) -> Iterator[None]:
    """Let the service calls made inside take until `moment` (time.monotonic() seconds)."""
    token = _WAIT_UNTIL.set(moment)
    try:
        yield
    finally:
        _WAIT_UNTIL.reset(token)


def _deadline(deadline_s: float) -> float:
    until = _WAIT_UNTIL.get()
    return deadline_s if until is None else max(deadline_s, until - time.monotonic())


async def _call(
    method: Callable[..., Awaitable[_Resp]], request: object, caller: Caller, deadline_s: float
) -> _Resp:
    try:
        return await method(request, **caller_options(caller, _deadline(deadline_s)))
    except grpc.aio.AioRpcError as exc:
        raise upstream_error(exc) from exc


class GrpcAccounts:
    """AccountsBackend over a gRPC channel."""

    def __init__(self, channel: grpc.aio.Channel, *, deadline_s: float) -> None:
        self._stub = accounts_pb2_grpc.AccountsStub(channel)
        self._deadline_s = deadline_s

    async def create_accounts(
        self, request: apb.CreateAccountsRequest, *, caller: Caller
    ) -> apb.CreateAccountsResponse:
        return await _call(self._stub.CreateAccounts, request, caller, self._deadline_s)

    async def lookup_accounts(
        self, request: apb.LookupAccountsRequest, *, caller: Caller
    ) -> apb.LookupAccountsResponse:
        return await _call(self._stub.LookupAccounts, request, caller, self._deadline_s)

    async def list_entries(
        self, request: apb.ListEntriesRequest, *, caller: Caller
    ) -> apb.ListEntriesResponse:
        return await _call(self._stub.ListEntries, request, caller, self._deadline_s)

    async def list_accounts(
        self, request: apb.ListAccountsRequest, *, caller: Caller
    ) -> apb.ListAccountsResponse:
        return await _call(self._stub.ListAccounts, request, caller, self._deadline_s)


class GrpcPayments:
    """PaymentsBackend over a gRPC channel."""

    def __init__(self, channel: grpc.aio.Channel, *, deadline_s: float) -> None:
        self._stub = payments_pb2_grpc.PaymentsStub(channel)
        self._deadline_s = deadline_s

    async def create_payment(
        self, request: ppb.CreatePaymentRequest, *, caller: Caller
    ) -> ppb.Payment:
        return await _call(self._stub.CreatePayment, request, caller, self._deadline_s)

    async def get_payment(self, request: ppb.GetPaymentRequest, *, caller: Caller) -> ppb.Payment:
        return await _call(self._stub.GetPayment, request, caller, self._deadline_s)

    async def list_payments(
        self, request: ppb.ListPaymentsRequest, *, caller: Caller
    ) -> ppb.ListPaymentsResponse:
        return await _call(self._stub.ListPayments, request, caller, self._deadline_s)

    async def capture_payment(
        self, request: ppb.CapturePaymentRequest, *, caller: Caller
    ) -> ppb.Payment:
        return await _call(self._stub.CapturePayment, request, caller, self._deadline_s)

    async def cancel_payment(
        self, request: ppb.CancelPaymentRequest, *, caller: Caller
    ) -> ppb.Payment:
        return await _call(self._stub.CancelPayment, request, caller, self._deadline_s)

    async def create_refund(
        self, request: ppb.CreateRefundRequest, *, caller: Caller
    ) -> ppb.Refund:
        return await _call(self._stub.CreateRefund, request, caller, self._deadline_s)

    async def get_refund(self, request: ppb.GetRefundRequest, *, caller: Caller) -> ppb.Refund:
        return await _call(self._stub.GetRefund, request, caller, self._deadline_s)

    async def list_refunds(
        self, request: ppb.ListRefundsRequest, *, caller: Caller
    ) -> ppb.ListRefundsResponse:
        return await _call(self._stub.ListRefunds, request, caller, self._deadline_s)

    async def create_topup(self, request: ppb.CreateTopupRequest, *, caller: Caller) -> ppb.Topup:
        return await _call(self._stub.CreateTopup, request, caller, self._deadline_s)

    async def get_topup(self, request: ppb.GetTopupRequest, *, caller: Caller) -> ppb.Topup:
        return await _call(self._stub.GetTopup, request, caller, self._deadline_s)

    async def list_topups(
        self, request: ppb.ListTopupsRequest, *, caller: Caller
    ) -> ppb.ListTopupsResponse:
        return await _call(self._stub.ListTopups, request, caller, self._deadline_s)

    async def reverse_topup(
        self, request: ppb.ReverseTopupRequest, *, caller: Caller
    ) -> ppb.TopupReversal:
        return await _call(self._stub.ReverseTopup, request, caller, self._deadline_s)

    async def create_payout(
        self, request: ppb.CreatePayoutRequest, *, caller: Caller
    ) -> ppb.Payout:
        return await _call(self._stub.CreatePayout, request, caller, self._deadline_s)

    async def get_payout(self, request: ppb.GetPayoutRequest, *, caller: Caller) -> ppb.Payout:
        return await _call(self._stub.GetPayout, request, caller, self._deadline_s)

    async def list_payouts(
        self, request: ppb.ListPayoutsRequest, *, caller: Caller
    ) -> ppb.ListPayoutsResponse:
        return await _call(self._stub.ListPayouts, request, caller, self._deadline_s)

    async def create_transfer(
        self, request: ppb.CreateTransferRequest, *, caller: Caller
    ) -> ppb.Transfer:
        return await _call(self._stub.CreateTransfer, request, caller, self._deadline_s)

    async def get_transfer(
        self, request: ppb.GetTransferRequest, *, caller: Caller
    ) -> ppb.Transfer:
        return await _call(self._stub.GetTransfer, request, caller, self._deadline_s)

    async def list_transfers(
        self, request: ppb.ListTransfersRequest, *, caller: Caller
    ) -> ppb.ListTransfersResponse:
        return await _call(self._stub.ListTransfers, request, caller, self._deadline_s)

    async def set_tenant_fees(
        self, request: ppb.SetTenantFeesRequest, *, caller: Caller
    ) -> ppb.TenantFees:
        return await _call(self._stub.SetTenantFees, request, caller, self._deadline_s)

    async def list_events(
        self, request: ppb.ListEventsRequest, *, caller: Caller
    ) -> ppb.ListEventsResponse:
        return await _call(self._stub.ListEvents, request, caller, self._deadline_s)

    async def get_event(self, request: ppb.GetEventRequest, *, caller: Caller) -> ppb.Event:
        return await _call(self._stub.GetEvent, request, caller, self._deadline_s)


class GrpcRisk:
    """RiskBackend over a gRPC channel."""

    def __init__(self, channel: grpc.aio.Channel, *, deadline_s: float) -> None:
        self._stub = risk_pb2_grpc.RiskStub(channel)
        self._deadline_s = deadline_s

    async def get_rules(self, request: rpb.GetRulesRequest, *, caller: Caller) -> rpb.RulesInfo:
        return await _call(self._stub.GetRules, request, caller, self._deadline_s)

    async def add_list_entry(
        self, request: rpb.AddListEntryRequest, *, caller: Caller
    ) -> rpb.ListEntry:
        return await _call(self._stub.AddListEntry, request, caller, self._deadline_s)

    async def remove_list_entry(
        self, request: rpb.RemoveListEntryRequest, *, caller: Caller
    ) -> rpb.RemoveListEntryResponse:
        return await _call(self._stub.RemoveListEntry, request, caller, self._deadline_s)

    async def list_list_entries(
        self, request: rpb.ListListEntriesRequest, *, caller: Caller
    ) -> rpb.ListListEntriesResponse:
        return await _call(self._stub.ListListEntries, request, caller, self._deadline_s)

    async def list_reviews(
        self, request: rpb.ListReviewsRequest, *, caller: Caller
    ) -> rpb.ListReviewsResponse:
        return await _call(self._stub.ListReviews, request, caller, self._deadline_s)

    async def get_review(self, request: rpb.GetReviewRequest, *, caller: Caller) -> rpb.Review:
        return await _call(self._stub.GetReview, request, caller, self._deadline_s)

    async def resolve_review(
        self, request: rpb.ResolveReviewRequest, *, caller: Caller
    ) -> rpb.Review:
        return await _call(self._stub.ResolveReview, request, caller, self._deadline_s)


class GrpcWebhooks:
    """WebhooksBackend over a gRPC channel."""

    def __init__(self, channel: grpc.aio.Channel, *, deadline_s: float) -> None:
        self._stub = webhooks_pb2_grpc.WebhooksStub(channel)
        self._deadline_s = deadline_s

    async def create_endpoint(
        self, request: wpb.CreateEndpointRequest, *, caller: Caller
    ) -> wpb.EndpointWithSecret:
        return await _call(self._stub.CreateEndpoint, request, caller, self._deadline_s)

    async def get_endpoint(
        self, request: wpb.GetEndpointRequest, *, caller: Caller
    ) -> wpb.Endpoint:
        return await _call(self._stub.GetEndpoint, request, caller, self._deadline_s)

    async def list_endpoints(
        self, request: wpb.ListEndpointsRequest, *, caller: Caller
    ) -> wpb.ListEndpointsResponse:
        return await _call(self._stub.ListEndpoints, request, caller, self._deadline_s)

    async def delete_endpoint(
        self, request: wpb.DeleteEndpointRequest, *, caller: Caller
    ) -> wpb.Endpoint:
        return await _call(self._stub.DeleteEndpoint, request, caller, self._deadline_s)

    async def rotate_secret(
        self, request: wpb.RotateSecretRequest, *, caller: Caller
    ) -> wpb.EndpointWithSecret:
        return await _call(self._stub.RotateSecret, request, caller, self._deadline_s)

    async def enable_endpoint(
        self, request: wpb.EnableEndpointRequest, *, caller: Caller
    ) -> wpb.Endpoint:
        return await _call(self._stub.EnableEndpoint, request, caller, self._deadline_s)

    async def list_deliveries(
        self, request: wpb.ListDeliveriesRequest, *, caller: Caller
    ) -> wpb.ListDeliveriesResponse:
        return await _call(self._stub.ListDeliveries, request, caller, self._deadline_s)

    async def resend_event(
        self, request: wpb.ResendEventRequest, *, caller: Caller
    ) -> wpb.Delivery:
        return await _call(self._stub.ResendEvent, request, caller, self._deadline_s)
