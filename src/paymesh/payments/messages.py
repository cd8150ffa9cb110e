"""The protobuf form of the payments objects: what the gRPC API answers with, and what
the events about them carry (rendered as their public JSON by
:mod:`paymesh.contracts.objects`)."""

from __future__ import annotations

from typing import Any, TypeVar

from google.protobuf.message import Message

from paymesh.contracts.payments.v1 import payments_pb2 as pb
from paymesh.payments.domain import CaptureMethod, P2PTransfer, Payment, Payout, Refund, Topup

__all__ = ["message_of", "payment_pb", "payout_pb", "refund_pb", "topup_pb", "transfer_pb"]

M = TypeVar("M", bound=Message)

_CAPTURE_METHODS_PB = {
    CaptureMethod.AUTOMATIC: pb.CAPTURE_METHOD_AUTOMATIC,
    CaptureMethod.MANUAL: pb.CAPTURE_METHOD_MANUAL,
}


def message_of(cls: type[M], obj: object, **overrides: Any) -> M:
    """The message `cls` of `obj`'s attributes named like the message's fields (the
    fields `obj` has not keep their defaults), and `overrides`."""
    names = [f.name for f in cls.DESCRIPTOR.fields if hasattr(obj, f.name)]
    return cls(**{**{name: getattr(obj, name) for name in names}, **overrides})


def payment_pb(p: Payment) -> pb.Payment:
    """The protobuf form of a payment."""
    risk = None if p.risk is None else message_of(pb.RiskAssessment, p.risk)
    return message_of(
        pb.Payment,
        p,
        capture_method=_CAPTURE_METHODS_PB[p.capture_method],
        status=p.status.value,
        metadata=dict(p.metadata),
        context=message_of(pb.PaymentContext, p.context),
        risk=risk,
    )


def _same_names(cls: type[M], obj: Refund | Topup | Payout | P2PTransfer) -> M:
    """The message `cls` of a flow object whose fields have the message's names
    (its status an enum of the message's strings)."""
    return message_of(cls, obj, status=obj.status.value)


def refund_pb(r: Refund) -> pb.Refund:
    """The protobuf form of a refund."""
    return _same_names(pb.Refund, r)


def topup_pb(t: Topup) -> pb.Topup:
    """The protobuf form of a top-up."""
    return _same_names(pb.Topup, t)


def payout_pb(p: Payout) -> pb.Payout:
    """The protobuf form of a payout."""
    return _same_names(pb.Payout, p)


def transfer_pb(t: P2PTransfer) -> pb.Transfer:
    """The protobuf form of a P2P transfer."""
    return _same_names(pb.Transfer, t)
