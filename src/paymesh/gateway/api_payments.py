"""REST routes for payments, refunds and top-ups."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from paymesh.contracts.payments.v1 import payments_pb2 as ppb
from paymesh.gateway.deps import IdempotencyKey, gateway, json_out, keyed, scoped
from paymesh.gateway.problems import problem_responses, with_account_problems
from paymesh.gateway.schemas import (
    CapturePaymentIn,
    CreatePaymentIn,
    CreateRefundIn,
    CreateTopupIn,
    PaymentList,
    PaymentOut,
    RefundList,
    RefundOut,
    TopupList,
    TopupOut,
    TopupReversalOut,
)
from paymesh.gateway.views import (
    CAPTURE_METHODS,
    payment_view,
    refund_view,
    topup_reversal_view,
    topup_view,
)
from paymesh.platform.identity import Caller

__all__ = ["router"]

router = APIRouter()

_WRITE_ERRORS = problem_responses(400, 401, 403, 404, 409, 422, 429, 503)
_READ_ERRORS = problem_responses(401, 403, 404, 503)


@router.post(
    "/v1/payments",
    tags=["payments"],
    summary="Create a payment",
    status_code=201,
    response_model=PaymentOut,
    responses=with_account_problems(_WRITE_ERRORS),
)
async def post_payment(
    body: CreatePaymentIn,
    request: Request,
    idempotency_key: IdempotencyKey = None,
    caller: Caller = scoped("POST", "/v1/payments"),
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
    gw = gateway(request)
    req = await keyed(request, caller, idempotency_key)

    async def run() -> Response:
        ctx = body.context
        payment = await gw.payments.create_payment(
            ppb.CreatePaymentRequest(
                id=req.object_id("pay"),
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
            caller=caller,
        )
        return json_out(
            payment_view(payment), 201, headers={"Location": f"/v1/payments/{payment.id}"}
        )

    return await req.run(run)


@router.get(
    "/v1/payments",
    tags=["payments"],
    summary="List payments",
    response_model=PaymentList,
    responses=problem_responses(401, 403, 422, 503),
)
async def list_payments(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size, 1-100.")] = 10,
    starting_after: Annotated[
        str | None, Query(max_length=64, description="The last payment id of the previous page.")
    ] = None,
    caller: Caller = scoped("GET", "/v1/payments"),
) -> Response:
    """The tenant's payments, newest first."""
    page = await gateway(request).payments.list_payments(
        ppb.ListPaymentsRequest(limit=limit, starting_after=starting_after or ""), caller=caller
    )
    return json_out(
        PaymentList(data=[payment_view(p) for p in page.payments], has_more=page.has_more)
    )


@router.get(
    "/v1/payments/{payment_id}",
    tags=["payments"],
    summary="Get a payment",
    response_model=PaymentOut,
    responses=_READ_ERRORS,
)
async def get_payment(
    payment_id: str,
    request: Request,
    caller: Caller = scoped("GET", "/v1/payments/{payment_id}"),
) -> Response:
    """A payment of the tenant (another tenant's is a 404)."""
    payment = await gateway(request).payments.get_payment(
        ppb.GetPaymentRequest(id=payment_id), caller=caller
    )
    return json_out(payment_view(payment))


@router.post(
    "/v1/payments/{payment_id}/capture",
    tags=["payments"],
    summary="Capture an authorised payment",
    response_model=PaymentOut,
    responses=_WRITE_ERRORS,
)
async def capture_payment(
    payment_id: str,
    request: Request,
    body: CapturePaymentIn | None = None,
    idempotency_key: IdempotencyKey = None,
    caller: Caller = scoped("POST", "/v1/payments/{payment_id}/capture"),
) -> Response:
    """Capture all (no amount) or part of a payment in `requires_capture`."""
    gw = gateway(request)
    req = await keyed(request, caller, idempotency_key)

    async def run() -> Response:
        amount = body.amount if body and body.amount is not None else 0
        payment = await gw.payments.capture_payment(
            ppb.CapturePaymentRequest(
                id=payment_id, amount=amount, request_id=req.object_id("capreq")
            ),
            caller=caller,
        )
        return json_out(payment_view(payment))

    return await req.run(run)


@router.post(
    "/v1/payments/{payment_id}/cancel",
    tags=["payments"],
    summary="Cancel an authorised payment",
    response_model=PaymentOut,
    responses=_WRITE_ERRORS,
)
async def cancel_payment(
    payment_id: str,
    request: Request,
    idempotency_key: IdempotencyKey = None,
    caller: Caller = scoped("POST", "/v1/payments/{payment_id}/cancel"),
) -> Response:
    """Release the hold of a payment in `requires_capture`."""
    gw = gateway(request)
    req = await keyed(request, caller, idempotency_key)

    async def run() -> Response:
        payment = await gw.payments.cancel_payment(
            ppb.CancelPaymentRequest(id=payment_id, request_id=req.object_id("canreq")),
            caller=caller,
        )
        return json_out(payment_view(payment))

    return await req.run(run)


@router.post(
    "/v1/refunds",
    tags=["refunds"],
    summary="Refund a payment",
    status_code=201,
    response_model=RefundOut,
    responses=_WRITE_ERRORS,
)
async def post_refund(
    body: CreateRefundIn,
    request: Request,
    idempotency_key: IdempotencyKey = None,
    caller: Caller = scoped("POST", "/v1/refunds"),
) -> Response:
    """Refund all (no amount) or part of what was captured; may be repeated up to it.

    Fees are not returned on refunds: the payee gives back the refunded
    amount, and the fee charged when the payment was captured is kept.
    """
    gw = gateway(request)
    req = await keyed(request, caller, idempotency_key)

    async def run() -> Response:
        refund = await gw.payments.create_refund(
            ppb.CreateRefundRequest(
                id=req.object_id("re"),
                payment_id=body.payment_id,
                amount=body.amount or 0,
                reason=body.reason or "",
            ),
            caller=caller,
        )
        return json_out(refund_view(refund), 201, headers={"Location": f"/v1/refunds/{refund.id}"})

    return await req.run(run)


@router.get(
    "/v1/refunds/{refund_id}",
    tags=["refunds"],
    summary="Get a refund",
    response_model=RefundOut,
    responses=_READ_ERRORS,
)
async def get_refund(
    refund_id: str,
    request: Request,
    caller: Caller = scoped("GET", "/v1/refunds/{refund_id}"),
) -> Response:
    """A refund of the tenant."""
    refund = await gateway(request).payments.get_refund(
        ppb.GetRefundRequest(id=refund_id), caller=caller
    )
    return json_out(refund_view(refund))


@router.get(
    "/v1/refunds",
    tags=["refunds"],
    summary="List refunds",
    response_model=RefundList,
    responses=problem_responses(401, 403, 422, 503),
)
async def list_refunds(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size, 1-100.")] = 10,
    starting_after: Annotated[
        str | None, Query(max_length=64, description="The last refund id of the previous page.")
    ] = None,
    caller: Caller = scoped("GET", "/v1/refunds"),
) -> Response:
    """The tenant's refunds, newest first."""
    page = await gateway(request).payments.list_refunds(
        ppb.ListRefundsRequest(limit=limit, starting_after=starting_after or ""), caller=caller
    )
    return json_out(RefundList(data=[refund_view(o) for o in page.refunds], has_more=page.has_more))


@router.post(
    "/v1/topups",
    tags=["topups"],
    summary="Fund an account",
    status_code=201,
    response_model=TopupOut,
    responses=with_account_problems(_WRITE_ERRORS),
)
async def post_topup(
    body: CreateTopupIn,
    request: Request,
    idempotency_key: IdempotencyKey = None,
    caller: Caller = scoped("POST", "/v1/topups"),
) -> Response:
    """Move money from the external funding source into an account.

    An account that is not the tenant's (unknown, or another tenant's: the
    same answer) is a 404 `account_not_found`, one in another currency a 422
    `currency_mismatch`; then no top-up is created.
    """
    gw = gateway(request)
    req = await keyed(request, caller, idempotency_key)

    async def run() -> Response:
        topup = await gw.payments.create_topup(
            ppb.CreateTopupRequest(
                id=req.object_id("tu"),
                account_id=body.account_id,
                amount=body.amount,
                currency=body.currency,
            ),
            caller=caller,
        )
        return json_out(topup_view(topup), 201, headers={"Location": f"/v1/topups/{topup.id}"})

    return await req.run(run)


@router.get(
    "/v1/topups/{topup_id}",
    tags=["topups"],
    summary="Get a top-up",
    response_model=TopupOut,
    responses=_READ_ERRORS,
)
async def get_topup(
    topup_id: str,
    request: Request,
    caller: Caller = scoped("GET", "/v1/topups/{topup_id}"),
) -> Response:
    """A top-up of the tenant."""
    topup = await gateway(request).payments.get_topup(
        ppb.GetTopupRequest(id=topup_id), caller=caller
    )
    return json_out(topup_view(topup))


@router.post(
    "/v1/topups/{topup_id}/reverse",
    tags=["topups"],
    summary="Reverse a top-up",
    response_model=TopupReversalOut,
    responses=_WRITE_ERRORS,
)
async def reverse_topup(
    topup_id: str,
    request: Request,
    idempotency_key: IdempotencyKey = None,
    caller: Caller = scoped("POST", "/v1/topups/{topup_id}/reverse"),
) -> Response:
    """Send a succeeded top-up's money back from its account to the external funding source.

    A top-up is reversed at most once: asking again answers the same
    reversal, in whatever state it reached. An account that no longer has
    the money fails the reversal with `insufficient_funds` (nothing moves).
    A top-up not `succeeded` is a 409 `invalid_state`.
    """
    gw = gateway(request)
    req = await keyed(request, caller, idempotency_key)

    async def run() -> Response:
        reversal = await gw.payments.reverse_topup(
            ppb.ReverseTopupRequest(topup_id=topup_id), caller=caller
        )
        return json_out(topup_reversal_view(reversal))

    return await req.run(run)


@router.get(
    "/v1/topups",
    tags=["topups"],
    summary="List top-ups",
    response_model=TopupList,
    responses=problem_responses(401, 403, 422, 503),
)
async def list_topups(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size, 1-100.")] = 10,
    starting_after: Annotated[
        str | None, Query(max_length=64, description="The last top-up id of the previous page.")
    ] = None,
    caller: Caller = scoped("GET", "/v1/topups"),
) -> Response:
    """The tenant's top-ups, newest first."""
    page = await gateway(request).payments.list_topups(
        ppb.ListTopupsRequest(limit=limit, starting_after=starting_after or ""), caller=caller
    )
    return json_out(TopupList(data=[topup_view(o) for o in page.topups], has_more=page.has_more))
