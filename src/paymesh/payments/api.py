"""The gRPC servicer: protobuf in and out, errors mapped to status codes.

Every RPC first reads the caller (UNAUTHENTICATED without one); another
tenant's object is answered NOT_FOUND, like an unknown one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

import grpc

from paymesh.contracts.payments.v1 import payments_pb2 as pb
from paymesh.contracts.payments.v1.payments_pb2_grpc import PaymentsServicer
from paymesh.payments import domain, errors, service
from paymesh.payments.domain import CaptureMethod, TenantFees
from paymesh.payments.flows import FLOWS
from paymesh.payments.flows.base import CreateRpc
from paymesh.payments.messages import payment_pb, payout_pb, refund_pb, topup_pb, transfer_pb
from paymesh.payments.saga import Deps
from paymesh.payments.store import StoredEvent
from paymesh.platform.identity import Caller
from paymesh.platform.rpc import abort, require_caller

__all__ = [
    "SERVICE_NAME",
    "PaymentsApi",
    "event_pb",
    "fees_pb",
    "servicer",
]

SERVICE_NAME = "paymesh.payments.v1.Payments"

Context = grpc.aio.ServicerContext[Any, Any]
T = TypeVar("T")

_STATUS: dict[type[errors.PaymentsError], grpc.StatusCode] = {
    errors.InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.Forbidden: grpc.StatusCode.PERMISSION_DENIED,
    errors.IdReused: grpc.StatusCode.ALREADY_EXISTS,
    errors.InvalidState: grpc.StatusCode.FAILED_PRECONDITION,
    errors.PaymentBusy: grpc.StatusCode.FAILED_PRECONDITION,
    errors.AmountExceedsAuthorized: grpc.StatusCode.FAILED_PRECONDITION,
    errors.AmountExceedsRefundable: grpc.StatusCode.FAILED_PRECONDITION,
    errors.RemoteError: grpc.StatusCode.UNAVAILABLE,
}

_CAPTURE_METHODS = {
    pb.CAPTURE_METHOD_AUTOMATIC: CaptureMethod.AUTOMATIC,
    pb.CAPTURE_METHOD_MANUAL: CaptureMethod.MANUAL,
}


def _status(exc: errors.PaymentsError) -> grpc.StatusCode:
    for cls in type(exc).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]
    return grpc.StatusCode.INTERNAL


def servicer(deps: Deps) -> PaymentsServicer:
    """paymesh.payments.v1.Payments: :class:`PaymentsApi` and the methods each flow
    serves from its own module (:attr:`~paymesh.payments.flows.base.Flow.rpcs`), by name."""
    methods = {
        rpc.name: _create_method(flow.kind, rpc) for flow in FLOWS.values() for rpc in flow.rpcs
    }
    api: PaymentsServicer = type("PaymentsApi", (PaymentsApi,), methods)(deps)
    return api


def _create_method(kind: str, rpc: CreateRpc) -> Callable[..., Awaitable[Any]]:
    async def create(self: PaymentsApi, request: Any, context: Context) -> Any:
        """A flow's create method: make the object from the request, record it, run it."""

        async def use(caller: Caller) -> Any:
            obj = await rpc.begin(request, caller, self._deps)
            return await service.start(
                kind, obj, partial(rpc.same, obj), caller=caller, deps=self._deps
            )

        return rpc.to_pb(await self._run(context, use))

    return create


class PaymentsApi(PaymentsServicer):
    """paymesh.payments.v1.Payments over the use cases (see :func:`servicer`)."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    async def _run(self, context: Context, use: Callable[[Caller], Awaitable[T]]) -> T:
        caller = await require_caller(context)
        try:
            return await use(caller)
        except errors.PaymentsError as exc:
            await abort(context, _status(exc), exc.code, exc.message)

    async def CreatePayment(self, request: pb.CreatePaymentRequest, context: Context) -> pb.Payment:
        ctx = request.context
        cmd = domain.CreatePayment(
            id=request.id,
            payer_account_id=request.payer_account_id,
            payee_account_id=request.payee_account_id,
            amount=request.amount,
            currency=request.currency,
            capture_method=_CAPTURE_METHODS.get(request.capture_method),
            description=request.description,
            metadata=dict(request.metadata),
            context=domain.PaymentContext(ip=ctx.ip, device_id=ctx.device_id, country=ctx.country),
        )
        p = await self._run(
            context, lambda caller: service.create_payment(cmd, caller=caller, deps=self._deps)
        )
        return payment_pb(p)

    async def GetPayment(self, request: pb.GetPaymentRequest, context: Context) -> pb.Payment:
        p = await self._run(
            context,
            lambda caller: service.get_payment(request.id, caller=caller, deps=self._deps),
        )
        return payment_pb(p)

    async def ListPayments(
        self, request: pb.ListPaymentsRequest, context: Context
    ) -> pb.ListPaymentsResponse:
        found, has_more = await self._run(
            context,
            lambda caller: service.list_payments(
                caller=caller,
                deps=self._deps,
                limit=request.limit,
                starting_after=request.starting_after,
            ),
        )
        return pb.ListPaymentsResponse(payments=[payment_pb(p) for p in found], has_more=has_more)

    async def CapturePayment(
        self, request: pb.CapturePaymentRequest, context: Context
    ) -> pb.Payment:
        cmd = domain.CapturePayment(
            id=request.id, amount=request.amount or None, request_id=request.request_id
        )
        p = await self._run(
            context, lambda caller: service.capture_payment(cmd, caller=caller, deps=self._deps)
        )
        return payment_pb(p)

    async def CancelPayment(self, request: pb.CancelPaymentRequest, context: Context) -> pb.Payment:
        cmd = domain.CancelPayment(id=request.id, request_id=request.request_id)
        p = await self._run(
            context, lambda caller: service.cancel_payment(cmd, caller=caller, deps=self._deps)
        )
        return payment_pb(p)

    async def CreateRefund(self, request: pb.CreateRefundRequest, context: Context) -> pb.Refund:
        cmd = domain.CreateRefund(
            id=request.id,
            payment_id=request.payment_id,
            amount=request.amount,
            reason=request.reason,
        )
        r = await self._run(
            context, lambda caller: service.create_refund(cmd, caller=caller, deps=self._deps)
        )
        return refund_pb(r)

    async def GetRefund(self, request: pb.GetRefundRequest, context: Context) -> pb.Refund:
        r = await self._run(
            context, lambda caller: service.get_refund(request.id, caller=caller, deps=self._deps)
        )
        return refund_pb(r)

    async def ListRefunds(
        self, request: pb.ListRefundsRequest, context: Context
    ) -> pb.ListRefundsResponse:
        found, has_more = await self._run(
            context,
            lambda caller: service.list_refunds(
                caller=caller,
                deps=self._deps,
                limit=request.limit,
                starting_after=request.starting_after,
            ),
        )
        return pb.ListRefundsResponse(refunds=[refund_pb(o) for o in found], has_more=has_more)

    async def CreateTopup(self, request: pb.CreateTopupRequest, context: Context) -> pb.Topup:
        cmd = domain.CreateTopup(
            id=request.id,
            account_id=request.account_id,
            amount=request.amount,
            currency=request.currency,
        )
        t = await self._run(
            context, lambda caller: service.create_topup(cmd, caller=caller, deps=self._deps)
        )
        return topup_pb(t)

    async def GetTopup(self, request: pb.GetTopupRequest, context: Context) -> pb.Topup:
        t = await self._run(
            context, lambda caller: service.get_topup(request.id, caller=caller, deps=self._deps)
        )
        return topup_pb(t)

    async def ListTopups(
        self, request: pb.ListTopupsRequest, context: Context
    ) -> pb.ListTopupsResponse:
        found, has_more = await self._run(
            context,
            lambda caller: service.list_topups(
                caller=caller,
                deps=self._deps,
                limit=request.limit,
                starting_after=request.starting_after,
            ),
        )
        return pb.ListTopupsResponse(topups=[topup_pb(o) for o in found], has_more=has_more)

    async def CreatePayout(self, request: pb.CreatePayoutRequest, context: Context) -> pb.Payout:
        cmd = domain.CreatePayout(
            id=request.id,
            account_id=request.account_id,
            amount=request.amount,
            currency=request.currency,
        )
        p = await self._run(
            context, lambda caller: service.create_payout(cmd, caller=caller, deps=self._deps)
        )
        return payout_pb(p)

    async def GetPayout(self, request: pb.GetPayoutRequest, context: Context) -> pb.Payout:
        p = await self._run(
            context, lambda caller: service.get_payout(request.id, caller=caller, deps=self._deps)
        )
        return payout_pb(p)

    async def ListPayouts(
        self, request: pb.ListPayoutsRequest, context: Context
    ) -> pb.ListPayoutsResponse:
        found, has_more = await self._run(
            context,
            lambda caller: service.list_payouts(
                caller=caller,
                deps=self._deps,
                limit=request.limit,
                starting_after=request.starting_after,
            ),
        )
        return pb.ListPayoutsResponse(payouts=[payout_pb(o) for o in found], has_more=has_more)

    async def CreateTransfer(
        self, request: pb.CreateTransferRequest, context: Context
    ) -> pb.Transfer:
        cmd = domain.CreateP2PTransfer(
            id=request.id,
            from_account_id=request.from_account_id,
            to_account_id=request.to_account_id,
            amount=request.amount,
            currency=request.currency,
        )
        t = await self._run(
            context, lambda caller: service.create_transfer(cmd, caller=caller, deps=self._deps)
        )
        return transfer_pb(t)

    async def GetTransfer(self, request: pb.GetTransferRequest, context: Context) -> pb.Transfer:
        t = await self._run(
            context,
            lambda caller: service.get_transfer(request.id, caller=caller, deps=self._deps),
        )
        return transfer_pb(t)

    async def ListTransfers(
        self, request: pb.ListTransfersRequest, context: Context
    ) -> pb.ListTransfersResponse:
        found, has_more = await self._run(
            context,
            lambda caller: service.list_transfers(
                caller=caller,
                deps=self._deps,
                limit=request.limit,
                starting_after=request.starting_after,
            ),
        )
        return pb.ListTransfersResponse(
            transfers=[transfer_pb(o) for o in found], has_more=has_more
        )

    async def SetTenantFees(
        self, request: pb.SetTenantFeesRequest, context: Context
    ) -> pb.TenantFees:
        fees = TenantFees(request.tenant_id, request.fixed, request.basis_points)
        stored = await self._run(
            context, lambda caller: service.set_tenant_fees(fees, caller=caller, deps=self._deps)
        )
        return fees_pb(stored)

    async def GetTenantFees(
        self, request: pb.GetTenantFeesRequest, context: Context
    ) -> pb.TenantFees:
        fees = await self._run(
            context,
            lambda caller: service.get_tenant_fees(
                request.tenant_id, caller=caller, deps=self._deps
            ),
        )
        return fees_pb(fees)

    async def ListEvents(
        self, request: pb.ListEventsRequest, context: Context
    ) -> pb.ListEventsResponse:
        found, has_more = await self._run(
            context,
            lambda caller: service.list_events(
                caller=caller,
                deps=self._deps,
                limit=request.limit,
                starting_after=request.starting_after,
            ),
        )
        return pb.ListEventsResponse(events=[event_pb(e) for e in found], has_more=has_more)

    async def GetEvent(self, request: pb.GetEventRequest, context: Context) -> pb.Event:
        event = await self._run(
            context, lambda caller: service.get_event(request.id, caller=caller, deps=self._deps)
        )
        return event_pb(event)


def fees_pb(f: TenantFees) -> pb.TenantFees:
    """The protobuf form of a fee schedule."""
    return pb.TenantFees(
        tenant_id=f.tenant_id,
        fixed=f.fixed,
        basis_points=f.basis_points,
        updated_at_us=f.updated_at_us,
    )


def event_pb(e: StoredEvent) -> pb.Event:
    """The protobuf form of a stored event (its envelope as JSON)."""
    return pb.Event(
        id=e.id, type=e.type, subject=e.subject, created_at_us=e.created_at_us, json=e.json
    )
