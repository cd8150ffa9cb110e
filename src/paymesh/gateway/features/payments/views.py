"""Payments and refunds as the API shows them."""

from __future__ import annotations

from paymesh.contracts.objects import to_json
from paymesh.contracts.payments.v1 import payments_pb2 as ppb
from paymesh.gateway.features.payments.schemas import PaymentOut, RefundOut

CAPTURE_METHODS = {
    "automatic": ppb.CAPTURE_METHOD_AUTOMATIC,
    "manual": ppb.CAPTURE_METHOD_MANUAL,
}


def payment_view(p: ppb.Payment) -> PaymentOut:
    """A payment: its public form, the one its events carry as data."""
    return PaymentOut.model_validate(to_json(p))


def refund_view(r: ppb.Refund) -> RefundOut:
    """A refund: its public form, the one its events carry as data."""
    return RefundOut.model_validate(to_json(r))
