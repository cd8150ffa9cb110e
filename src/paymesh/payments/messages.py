"""The protobuf form of the payments objects: what the gRPC API answers with, and what
the events about them carry (rendered as their public JSON by
:mod:`paymesh.contracts.objects`)."""

from __future__ import annotations

from typing import TypeVar

from google.protobuf.message import Message

from paymesh.contracts.payments.v1 import payments_pb2 as pb
from paymesh.payments.domain import CaptureMethod, P2PTransfer, Payment, Payout, Refund, Topup

__all__ = ["payment_pb", "payout_pb", "refund_pb", "topup_pb", "transfer_pb"]

M = TypeVar("M", bound=Message)

_CAPTURE_METHODS_PB = {
    CaptureMethod.AUTOMATIC: pb.CAPTURE_METHOD_AUTOMATIC,
    CaptureMethod.MANUAL: pb.CAPTURE_METHOD_MANUAL,
}


def payment_pb(p: Payment) -> pb.Payment:
    """The protobuf form of a payment."""
    message = pb.Payment(
        id=p.id,
        tenant_id=p.tenant_id,
        payer_account_id=p.payer_account_id,
        payee_account_id=p.payee_account_id,
        amount=p.amount,
        currency=p.currency,
        capture_method=_CAPTURE_METHODS_PB[p.capture_method],
        status=p.status.value,
        amount_captured=p.amount_captured,
        amount_refunded=p.amount_refunded,
        fee=p.fee,
        description=p.description,
        metadata=dict(p.metadata),
        context=pb.PaymentContext(
            ip=p.context.ip, device_id=p.context.device_id, country=p.context.country
        ),
        failure_code=p.failure_code,
        failure_message=p.failure_message,
        created_at_us=p.created_at_us,
        updated_at_us=p.updated_at_us,
    )
    if p.risk is not None:
        message.risk.CopyFrom(
            pb.RiskAssessment(
                decision=p.risk.decision,
                score=p.risk.score,
                reasons=list(p.risk.reasons),
                rules_version=p.risk.rules_version,
            )
        )
    return message


def _same_names(cls: type[M], obj: Refund | Topup | Payout | P2PTransfer) -> M:
    """The message `cls` of a flow object whose fields have the message's names
    (its status an enum of the message's strings)."""
    values = {f.name: getattr(obj, f.name) for f in cls.DESCRIPTOR.fields}
    return cls(**{**values, "status": obj.status.value})


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
