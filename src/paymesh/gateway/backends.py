"""Ports to the services behind the gateway, and their gRPC adapters.

The ports speak the services' protobuf messages; each call carries the
caller. An adapter turns a failed call into :class:`UpstreamError` with the
service's stable error code, so the routes never see gRPC.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import grpc

from paymesh.contracts.accounts.v1 import accounts_pb2 as apb
from paymesh.contracts.accounts.v1 import accounts_pb2_grpc
from paymesh.contracts.payments.v1 import payments_pb2 as ppb
from paymesh.contracts.payments.v1 import payments_pb2_grpc
from paymesh.gateway.domain import upstream_status
from paymesh.gateway.errors import ServiceUnavailable, UpstreamError
from paymesh.platform.identity import Caller
from paymesh.platform.rpc import caller_options, error_code

__all__ = ["AccountsBackend", "GrpcAccounts", "GrpcPayments", "PaymentsBackend"]

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

    async def create_topup(
        self, request: ppb.CreateTopupRequest, *, caller: Caller
    ) -> ppb.Topup: ...

    async def get_topup(self, request: ppb.GetTopupRequest, *, caller: Caller) -> ppb.Topup: ...

    async def create_payout(
        self, request: ppb.CreatePayoutRequest, *, caller: Caller
    ) -> ppb.Payout: ...

    async def get_payout(self, request: ppb.GetPayoutRequest, *, caller: Caller) -> ppb.Payout: ...

    async def create_transfer(
        self, request: ppb.CreateTransferRequest, *, caller: Caller
    ) -> ppb.Transfer: ...

    async def get_transfer(
        self, request: ppb.GetTransferRequest, *, caller: Caller
    ) -> ppb.Transfer: ...

    async def set_tenant_fees(
        self, request: ppb.SetTenantFeesRequest, *, caller: Caller
    ) -> ppb.TenantFees: ...

    async def list_events(
        self, request: ppb.ListEventsRequest, *, caller: Caller
    ) -> ppb.ListEventsResponse: ...

    async def get_event(self, request: ppb.GetEventRequest, *, caller: Caller) -> ppb.Event: ...


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


async def _call(
    method: Callable[..., Awaitable[_Resp]], request: object, caller: Caller, deadline_s: float
) -> _Resp:
    try:
        return await method(request, **caller_options(caller, deadline_s))
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

    async def create_topup(self, request: ppb.CreateTopupRequest, *, caller: Caller) -> ppb.Topup:
        return await _call(self._stub.CreateTopup, request, caller, self._deadline_s)

    async def get_topup(self, request: ppb.GetTopupRequest, *, caller: Caller) -> ppb.Topup:
        return await _call(self._stub.GetTopup, request, caller, self._deadline_s)

    async def create_payout(
        self, request: ppb.CreatePayoutRequest, *, caller: Caller
    ) -> ppb.Payout:
        return await _call(self._stub.CreatePayout, request, caller, self._deadline_s)

    async def get_payout(self, request: ppb.GetPayoutRequest, *, caller: Caller) -> ppb.Payout:
        return await _call(self._stub.GetPayout, request, caller, self._deadline_s)

    async def create_transfer(
        self, request: ppb.CreateTransferRequest, *, caller: Caller
    ) -> ppb.Transfer:
        return await _call(self._stub.CreateTransfer, request, caller, self._deadline_s)

    async def get_transfer(
        self, request: ppb.GetTransferRequest, *, caller: Caller
    ) -> ppb.Transfer:
        return await _call(self._stub.GetTransfer, request, caller, self._deadline_s)

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
