"""Payments and refunds as the API shows them."""

from __future__ import annotations

from paymesh.contracts.events import format_time
from paymesh.contracts.payments.v1 import payments_pb2 as ppb
from paymesh.gateway.features.payments.schemas import (
    PaymentContextOut,
    PaymentOut,
    RefundOut,
    RiskOut,
)
from paymesh.gateway.views import opt

CAPTURE_METHODS = {
    "automatic": ppb.CAPTURE_METHOD_AUTOMATIC,
    "manual": ppb.CAPTURE_METHOD_MANUAL,
}

_CAPTURE_NAMES = {v: k for k, v in CAPTURE_METHODS.items()}


def payment_view(p: ppb.Payment) -> PaymentOut:
    """A payment."""
    ctx = p.context if p.HasField("context") else None
    risk = p.risk if p.HasField("risk") else None
    return PaymentOut(
        id=p.id,
        status=p.status,
        amount=p.amount,
        currency=p.currency,
        amount_captured=p.amount_captured,
        amount_refunded=p.amount_refunded,
        fee=p.fee,
        capture_method=_CAPTURE_NAMES.get(p.capture_method, "automatic"),
        payer_account_id=p.payer_account_id,
        payee_account_id=p.payee_account_id,
        description=opt(p.description),
        metadata=dict(p.metadata),
        context=(
            PaymentContextOut(
                ip=opt(ctx.ip), device_id=opt(ctx.device_id), country=opt(ctx.country)
            )
            if ctx is not None
            else None
        ),
        risk=(
            RiskOut(
                decision=opt(risk.decision),
                score=risk.score if risk.decision else None,
                reasons=list(risk.reasons),
            )
            if risk is not None
            else None
        ),
        failure_code=opt(p.failure_code),
        created=format_time(p.created_at_us),
    )


def refund_view(r: ppb.Refund) -> RefundOut:
    """A refund."""
    return RefundOut(
        id=r.id,
        payment_id=r.payment_id,
        amount=r.amount,
        currency=r.currency,
        status=r.status,
        reason=opt(r.reason),
        failure_code=opt(r.failure_code),
        created=format_time(r.created_at_us),
    )
