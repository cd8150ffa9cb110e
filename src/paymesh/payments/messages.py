"""The protobuf form of the payments objects: what the gRPC API answers with, and what
the events about them carry (rendered as their public JSON by
:mod:`paymesh.contracts.objects`)."""

from __future__ import annotations

from paymesh.contracts.payments.v1 import payments_pb2 as pb
from paymesh.payments.domain import CaptureMethod, P2PTransfer, Payment, Payout, Refund, Topup

__all__ = ["payment_pb", "payout_pb", "refund_pb", "topup_pb", "transfer_pb"]

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


def refund_pb(r: Refund) -> pb.Refund:
    """The protobuf form of a refund."""
    return pb.Refund(
        id=r.id,
        tenant_id=r.tenant_id,
        payment_id=r.payment_id,
        amount=r.amount,
        currency=r.currency,
        status=r.status.value,
        reason=r.reason,
        failure_code=r.failure_code,
        created_at_us=r.created_at_us,
    )


def topup_pb(t: Topup) -> pb.Topup:
    """The protobuf form of a top-up."""
    return pb.Topup(
        id=t.id,
        tenant_id=t.tenant_id,
        account_id=t.account_id,
        amount=t.amount,
        currency=t.currency,
        status=t.status.value,
        failure_code=t.failure_code,
        created_at_us=t.created_at_us,
    )


def payout_pb(p: Payout) -> pb.Payout:
    """The protobuf form of a payout."""
    return pb.Payout(
        id=p.id,
        tenant_id=p.tenant_id,
        account_id=p.account_id,
        amount=p.amount,
        currency=p.currency,
        status=p.status.value,
        failure_code=p.failure_code,
        created_at_us=p.created_at_us,
    )


def transfer_pb(t: P2PTransfer) -> pb.Transfer:
    """The protobuf form of a P2P transfer."""
    return pb.Transfer(
        id=t.id,
        tenant_id=t.tenant_id,
        from_account_id=t.from_account_id,
        to_account_id=t.to_account_id,
        amount=t.amount,
        currency=t.currency,
        status=t.status.value,
        failure_code=t.failure_code,
        created_at_us=t.created_at_us,
    )
