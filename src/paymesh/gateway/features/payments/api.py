"""REST routes for payments and refunds."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from starlette.responses import Response

from paymesh.contracts.payments.v1 import payments_pb2 as ppb
from paymesh.gateway.deps import Payments, json_out
from paymesh.gateway.domain import PAYMENTS_READ, PAYMENTS_WRITE
from paymesh.gateway.features.payments.schemas import (
    CapturePaymentIn,
    CreatePaymentIn,
    CreateRefundIn,
    PaymentList,
    PaymentOut,
    RefundList,
    RefundOut,
)
from paymesh.gateway.features.payments.views import CAPTURE_METHODS, payment_view, refund_view
from paymesh.gateway.idempotency import KeyedRequest
from paymesh.gateway.routing import Routes
from paymesh.platform.identity import Caller

__all__ = ["routes"]

routes = Routes(tag="payments")

_WRITE_ERRORS = (400, 401, 403, 404, 409, 422, 429, 503)
_READ_ERRORS = (401, 403, 404, 503)
_LIST_ERRORS = (401, 403, 422, 503)


@routes.post(
    "/v1/payments",
    scope=PAYMENTS_WRITE,
    moves_money=True,
    summary="Create a payment",
    status_code=201,
    response_model=PaymentOut,
    problems=_WRITE_ERRORS,
    account_problems=True,
)
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
    payment = await payments.call(
        payments.stub.CreatePayment,
        ppb.CreatePaymentRequest(
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
        ),
        caller,
    )
    return json_out(payment_view(payment), 201, headers={"Location": f"/v1/payments/{payment.id}"})


@routes.get(
    "/v1/payments",
    scope=PAYMENTS_READ,
    summary="List payments",
    response_model=PaymentList,
    problems=_LIST_ERRORS,
)
async def list_payments(
    caller: Caller,
    payments: Payments,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size, 1-100.")] = 10,
    starting_after: Annotated[
        str | None, Query(max_length=64, description="The last payment id of the previous page.")
    ] = None,
) -> Response:
    """The tenant's payments, newest first."""
    page = await payments.call(
        payments.stub.ListPayments,
        ppb.ListPaymentsRequest(limit=limit, starting_after=starting_after or ""),
        caller,
    )
    return json_out(
        PaymentList(data=[payment_view(p) for p in page.payments], has_more=page.has_more)
    )


@routes.get(
    "/v1/payments/{payment_id}",
    scope=PAYMENTS_READ,
    summary="Get a payment",
    response_model=PaymentOut,
    problems=_READ_ERRORS,
)
async def get_payment(payment_id: str, caller: Caller, payments: Payments) -> Response:
    """A payment of the tenant (another tenant's is a 404)."""
    payment = await payments.call(
        payments.stub.GetPayment, ppb.GetPaymentRequest(id=payment_id), caller
    )
    return json_out(payment_view(payment))


@routes.post(
    "/v1/payments/{payment_id}/capture",
    scope=PAYMENTS_WRITE,
    moves_money=True,
    summary="Capture an authorised payment",
    response_model=PaymentOut,
    problems=_WRITE_ERRORS,
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
    payment = await payments.call(
        payments.stub.CapturePayment,
        ppb.CapturePaymentRequest(
            id=payment_id, amount=amount, request_id=keyed.object_id("capreq")
        ),
        caller,
    )
    return json_out(payment_view(payment))


@routes.post(
    "/v1/payments/{payment_id}/cancel",
    scope=PAYMENTS_WRITE,
    moves_money=True,
    summary="Cancel an authorised payment",
    response_model=PaymentOut,
    problems=_WRITE_ERRORS,
)
async def cancel_payment(
    payment_id: str, caller: Caller, keyed: KeyedRequest, payments: Payments
) -> Response:
    """Release the hold of a payment in `requires_capture`."""
    payment = await payments.call(
        payments.stub.CancelPayment,
        ppb.CancelPaymentRequest(id=payment_id, request_id=keyed.object_id("canreq")),
        caller,
    )
    return json_out(payment_view(payment))


@routes.post(
    "/v1/refunds",
    scope=PAYMENTS_WRITE,
    moves_money=True,
    tag="refunds",
    summary="Refund a payment",
    status_code=201,
    response_model=RefundOut,
    problems=_WRITE_ERRORS,
)
async def post_refund(
    body: CreateRefundIn, caller: Caller, keyed: KeyedRequest, payments: Payments
) -> Response:
    """Refund all (no amount) or part of what was captured; may be repeated up to it.

    Fees are not returned on refunds: the payee gives back the refunded
    amount, and the fee charged when the payment was captured is kept.
    """
    refund = await payments.call(
        payments.stub.CreateRefund,
        ppb.CreateRefundRequest(
            id=keyed.object_id("re"),
            payment_id=body.payment_id,
            amount=body.amount or 0,
            reason=body.reason or "",
        ),
        caller,
    )
    return json_out(refund_view(refund), 201, headers={"Location": f"/v1/refunds/{refund.id}"})


@routes.get(
    "/v1/refunds/{refund_id}",
    scope=PAYMENTS_READ,
    tag="refunds",
    summary="Get a refund",
    response_model=RefundOut,
    problems=_READ_ERRORS,
)
async def get_refund(refund_id: str, caller: Caller, payments: Payments) -> Response:
    """A refund of the tenant."""
    refund = await payments.call(
        payments.stub.GetRefund, ppb.GetRefundRequest(id=refund_id), caller
    )
    return json_out(refund_view(refund))


@routes.get(
    "/v1/refunds",
    scope=PAYMENTS_READ,
    tag="refunds",
    summary="List refunds",
    response_model=RefundList,
    problems=_LIST_ERRORS,
)
async def list_refunds(
    caller: Caller,
    payments: Payments,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size, 1-100.")] = 10,
    starting_after: Annotated[
        str | None, Query(max_length=64, description="The last refund id of the previous page.")
    ] = None,
) -> Response:
    """The tenant's refunds, newest first."""
    page = await payments.call(
        payments.stub.ListRefunds,
        ppb.ListRefundsRequest(limit=limit, starting_after=starting_after or ""),
        caller,
    )
    return json_out(RefundList(data=[refund_view(o) for o in page.refunds], has_more=page.has_more))
