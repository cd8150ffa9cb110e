"""REST routes for payments and refunds."""

from __future__ import annotations

from starlette.responses import Response

from paymesh.contracts.payments.v1 import payments_pb2 as ppb
from paymesh.gateway.deps import Payments, json_out
from paymesh.gateway.domain import PAYMENTS_WRITE
from paymesh.gateway.features.payments.schemas import (
    CapturePaymentIn,
    CreatePaymentIn,
    CreateRefundIn,
    PaymentOut,
    RefundOut,
)
from paymesh.gateway.features.payments.views import CAPTURE_METHODS, payment_view, refund_view
from paymesh.gateway.idempotency import KeyedRequest
from paymesh.gateway.pages import declare_reads
from paymesh.gateway.reads import PAYMENTS, REFUNDS
from paymesh.gateway.routing import Routes
from paymesh.gateway.writes import Writes, create
from paymesh.platform.identity import Caller

__all__ = ["routes"]

routes = Routes(tag="payments")

writes = Writes(routes, PAYMENTS_WRITE, (400, 401, 403, 404, 409, 422, 429, 503), moves_money=True)


@writes.create("/v1/payments", PaymentOut, summary="Create a payment", account_problems=True)
async def post_payment(
    body: CreatePaymentIn, caller: Caller, keyed: KeyedRequest, payments: Payments
) -> Response:
    """Pay from one of the tenant's accounts to another; risk decides first.

    The answer is 201 with the payment in whatever state it reached:
    `succeeded` (automatic capture), `requires_capture` (manual), `in_review`,
    or `failed` with a `failure_code` (e.g. declined by risk, insufficient
    funds). A declined payment is still a created payment, so it is a 201.

    Both accounts are checked first: one that is not the tenant's (unknown,
    or another tenant's: the same answer) is a 404 `account_not_found`, one
    in another currency than the payment a 422 `currency_mismatch`; then no
    payment is created.
    """
    ctx = body.context
    request = ppb.CreatePaymentRequest(
        id=keyed.object_id("pay"),
        payer_account_id=body.payer_account_id,
        payee_account_id=body.payee_account_id,
        amount=body.amount,
        currency=body.currency,
        capture_method=CAPTURE_METHODS[body.capture_method],
        description=body.description or "",
        metadata=body.metadata or {},
        context=ppb.PaymentContext(
            ip=ctx.ip or "", device_id=ctx.device_id or "", country=ctx.country or ""
        )
        if ctx
        else None,
    )
    return await create(
        payments, payments.stub.CreatePayment, request, caller, view=payment_view, at="/v1/payments"
    )


declare_reads(routes, PAYMENTS)


@writes.action(
    "/v1/payments/{payment_id}/capture", PaymentOut, summary="Capture an authorised payment"
)
async def capture_payment(
    payment_id: str,
    caller: Caller,
    keyed: KeyedRequest,
    payments: Payments,
    body: CapturePaymentIn | None = None,
) -> Response:
    """Capture all (no amount) or part of a payment in `requires_capture`."""
    amount = body.amount if body and body.amount is not None else 0
    request = ppb.CapturePaymentRequest(
        id=payment_id, amount=amount, request_id=keyed.object_id("capreq")
    )
    payment = await payments.call(payments.stub.CapturePayment, request, caller)
    return json_out(payment_view(payment))


@writes.action(
    "/v1/payments/{payment_id}/cancel", PaymentOut, summary="Cancel an authorised payment"
)
async def cancel_payment(
    payment_id: str, caller: Caller, keyed: KeyedRequest, payments: Payments
) -> Response:
    """Release the hold of a payment in `requires_capture`."""
    request = ppb.CancelPaymentRequest(id=payment_id, request_id=keyed.object_id("canreq"))
    payment = await payments.call(payments.stub.CancelPayment, request, caller)
    return json_out(payment_view(payment))


@writes.create("/v1/refunds", RefundOut, tag="refunds", summary="Refund a payment")
async def post_refund(
    body: CreateRefundIn, caller: Caller, keyed: KeyedRequest, payments: Payments
) -> Response:
    """Refund all (no amount) or part of what was captured; may be repeated up to it.

    Fees are not returned on refunds: the payee gives back the refunded
    amount, and the fee charged when the payment was captured is kept.
    """
    request = ppb.CreateRefundRequest(
        id=keyed.object_id("re"),
        payment_id=body.payment_id,
        amount=body.amount or 0,
        reason=body.reason or "",
    )
    return await create(
        payments, payments.stub.CreateRefund, request, caller, view=refund_view, at="/v1/refunds"
    )


declare_reads(routes, REFUNDS)
