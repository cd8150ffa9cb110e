"""The gRPC servicer: protobuf in and out over the use cases.

Every RPC first reads the caller (UNAUTHENTICATED without one); another
tenant's object is answered NOT_FOUND, like an unknown one. A use case's
:class:`~paymesh.payments.errors.PaymentsError` ends the call with the error's
status and code (the server maps it: see :mod:`paymesh.platform.errors`).

Most methods have one of three shapes, so they are written once and bound by
name from tables: a *unary* RPC turns the request into the use case's
argument and answers the result as protobuf (:data:`_UNARY`, and ``Get<Object>``
for every object kind); a *list* RPC answers one page of a kind of object
(``List<Object>s``); a flow's *create* RPC is declared in the flow's own module
(:attr:`~paymesh.payments.flows.base.Flow.rpcs`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from operator import attrgetter
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from paymesh.contracts.payments.v1 import payments_pb2 as pb
from paymesh.contracts.payments.v1 import payments_pb2_grpc as pb_grpc
from paymesh.payments import domain, service, settlement_api
from paymesh.payments.domain import CaptureMethod, TenantFees
from paymesh.payments.flows import FLOWS
from paymesh.payments.flows.base import CreateRpc
from paymesh.payments.messages import (
    message_of,
    payment_pb,
    payout_pb,
    refund_pb,
    topup_pb,
    transfer_pb,
)
from paymesh.payments.saga import Deps
from paymesh.payments.store import StoredEvent
from paymesh.platform.rpc import require_caller

__all__ = [
    "SERVICE_NAME",
    "PaymentsServicer",
    "event_pb",
    "fees_pb",
    "servicer",
]

SERVICE_NAME = "paymesh.payments.v1.Payments"

Context = grpc.aio.ServicerContext[Any, Any]
Method = Callable[..., Awaitable[Any]]
T = TypeVar("T")

_CAPTURE_METHODS = {
    pb.CAPTURE_METHOD_AUTOMATIC: CaptureMethod.AUTOMATIC,
    pb.CAPTURE_METHOD_MANUAL: CaptureMethod.MANUAL,
}


class PaymentsServicer(pb_grpc.PaymentsServicer):
    """paymesh.payments.v1.Payments over the use cases; its methods are bound by
    :func:`servicer` from the tables below."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps


def servicer(deps: Deps) -> PaymentsServicer:
    """paymesh.payments.v1.Payments: :class:`PaymentsServicer` with every method bound."""
    methods: dict[str, Method] = {name: _unary(rpc) for name, rpc in _UNARY.items()}
    for name, read in _OBJECTS.items():
        methods[f"Get{name}"] = _unary(_Unary(attrgetter("id"), read.get, read.to_pb))
        methods[f"List{name}s"] = _list(name, read)
    for flow in FLOWS.values():
        methods.update({rpc.name: _create(flow.kind, rpc) for rpc in flow.rpcs})
    methods.update(settlement_api.METHODS)
    bound: PaymentsServicer = type("PaymentsServicer", (PaymentsServicer,), methods)(deps)
    return bound


@dataclass(frozen=True)
class _Unary:
    """An RPC that answers ``to_pb(use(argument(request)))``, the use case called as the
    caller."""

    argument: Callable[[Any], Any]
    use: Method
    to_pb: Callable[[Any], Message]


@dataclass(frozen=True)
class _Read:
    """How one kind of object is read by id and listed a page at a time."""

    get: Method
    list: Method
    to_pb: Callable[[Any], Message]


def _unary(rpc: _Unary) -> Method:
    async def method(self: PaymentsServicer, request: Any, context: Context) -> Any:
        caller = await require_caller(context)
        return rpc.to_pb(await rpc.use(rpc.argument(request), caller=caller, deps=self.deps))

    return method


def _list(name: str, read: _Read) -> Method:
    """``List<name>s``: one page of the caller's objects, in the response's field
    ``<name>s`` (lower case)."""
    response = getattr(pb, f"List{name}sResponse")
    field = f"{name.lower()}s"

    async def method(self: PaymentsServicer, request: Any, context: Context) -> Any:
        caller = await require_caller(context)
        found, has_more = await read.list(
            caller=caller,
            deps=self.deps,
            limit=request.limit,
            starting_after=request.starting_after,
        )
        return response(**{field: [read.to_pb(o) for o in found]}, has_more=has_more)

    return method


def _create(kind: str, rpc: CreateRpc) -> Method:
    async def create(self: PaymentsServicer, request: Any, context: Context) -> Any:
        """A flow's create method: make the object from the request, record it, run it."""
        caller = await require_caller(context)
        obj = await rpc.begin(request, caller, self.deps)
        started = await service.start(
            kind, obj, partial(rpc.same, obj), caller=caller, deps=self.deps
        )
        return rpc.to_pb(started)

    return create


def _command(cls: type[T], request: Message, **overrides: Any) -> T:
    """The dataclass `cls` of the request's fields named like its own (the others keep
    their defaults), and `overrides`."""
    given = request.DESCRIPTOR.fields_by_name
    names = [f.name for f in dataclasses.fields(cls) if f.name in given]  # type: ignore[arg-type]
    return cls(**{**{name: getattr(request, name) for name in names}, **overrides})


def _same_names(cls: type[Any]) -> Callable[[Message], Any]:
    """A request's :func:`_command` of class `cls`, as it is."""
    return partial(_command, cls)


def _create_payment(request: pb.CreatePaymentRequest) -> domain.CreatePayment:
    return _command(
        domain.CreatePayment,
        request,
        capture_method=_CAPTURE_METHODS.get(request.capture_method),
        metadata=dict(request.metadata),
        context=_command(domain.PaymentContext, request.context),
    )


def _capture_payment(request: pb.CapturePaymentRequest) -> domain.CapturePayment:
    # 0: the whole authorised amount.
    return _command(domain.CapturePayment, request, amount=request.amount or None)


def fees_pb(f: TenantFees) -> pb.TenantFees:
    """The protobuf form of a fee schedule."""
    return message_of(pb.TenantFees, f)


def event_pb(e: StoredEvent) -> pb.Event:
    """The protobuf form of a stored event (its envelope as JSON)."""
    return message_of(pb.Event, e)


def _flow_read(kind: str, to_pb: Callable[[Any], Message]) -> _Read:
    return _Read(partial(service.get_object, kind), partial(service.list_objects, kind), to_pb)


# The unary RPCs that are not an object's Get: the request's argument, the use case, the answer.
_UNARY: dict[str, _Unary] = {
    "CreatePayment": _Unary(_create_payment, service.create_payment, payment_pb),
    "CapturePayment": _Unary(_capture_payment, service.capture_payment, payment_pb),
    "CancelPayment": _Unary(_same_names(domain.CancelPayment), service.cancel_payment, payment_pb),
    "CreateRefund": _Unary(_same_names(domain.CreateRefund), service.create_refund, refund_pb),
    "CreateTopup": _Unary(_same_names(domain.CreateTopup), service.create_topup, topup_pb),
    "CreatePayout": _Unary(_same_names(domain.CreatePayout), service.create_payout, payout_pb),
    "CreateTransfer": _Unary(
        _same_names(domain.CreateP2PTransfer), service.create_transfer, transfer_pb
    ),
    "SetTenantFees": _Unary(_same_names(TenantFees), service.set_tenant_fees, fees_pb),
    "GetTenantFees": _Unary(attrgetter("tenant_id"), service.get_tenant_fees, fees_pb),
}

# The kinds of object read by id (Get<name>) and listed (List<name>s), by name.
_OBJECTS: dict[str, _Read] = {
    "Payment": _flow_read("payment", payment_pb),
    "Refund": _flow_read("refund", refund_pb),
    "Topup": _flow_read("topup", topup_pb),
    "Payout": _flow_read("payout", payout_pb),
    "Transfer": _flow_read("transfer", transfer_pb),
    "Event": _Read(service.get_event, service.list_events, event_pb),
}
