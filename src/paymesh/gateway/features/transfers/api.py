"""REST routes for top-ups, payouts and P2P transfers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from paymesh.contracts.payments.v1 import payments_pb2 as ppb
from paymesh.gateway.deps import IdempotencyKey, gateway, json_out, keyed, scoped
from paymesh.gateway.features.transfers.schemas import (
    CreatePayoutIn,
    CreateTopupIn,
    CreateTransferIn,
    PayoutList,
    PayoutOut,
    TopupList,
    TopupOut,
    TransferList,
    TransferOut,
)
from paymesh.gateway.features.transfers.views import payout_view, topup_view, transfer_view
from paymesh.gateway.problems import problem_responses, with_account_problems
from paymesh.platform.identity import Caller

__all__ = ["router"]

router = APIRouter()


_WRITE_ERRORS = problem_responses(400, 401, 403, 404, 409, 422, 429, 503)

_READ_ERRORS = problem_responses(401, 403, 404, 503)


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


@router.post(
    "/v1/payouts",
    tags=["payouts"],
    summary="Send money out of an account",
    status_code=201,
    response_model=PayoutOut,
    responses=with_account_problems(_WRITE_ERRORS),
)
async def post_payout(
    body: CreatePayoutIn,
    request: Request,
    idempotency_key: IdempotencyKey = None,
    caller: Caller = scoped("POST", "/v1/payouts"),
) -> Response:
    """Move money from an account to the external funding source (the bank).

    The money is held first, then the bank is asked to send it; the hold is
    posted once the bank has paid, or released if the bank refuses. The
    answer is 201 with the payout as it stands: `succeeded`, `failed` with a
    `failure_code` (e.g. `insufficient_funds`, or the bank's code), or
    `processing` while the bank's answer is awaited (poll `GET
    /v1/payouts/{id}` or wait for the `payout.succeeded` / `payout.failed`
    event). An account that is not the tenant's (unknown, or another
    tenant's: the same answer) is a 404 `account_not_found`, one in another
    currency a 422 `currency_mismatch`; then no payout is created.
    """
    gw = gateway(request)
    req = await keyed(request, caller, idempotency_key)

    async def run() -> Response:
        payout = await gw.payments.create_payout(
            ppb.CreatePayoutRequest(
                id=req.object_id("po"),
                account_id=body.account_id,
                amount=body.amount,
                currency=body.currency,
            ),
            caller=caller,
        )
        return json_out(payout_view(payout), 201, headers={"Location": f"/v1/payouts/{payout.id}"})

    return await req.run(run)


@router.get(
    "/v1/payouts/{payout_id}",
    tags=["payouts"],
    summary="Get a payout",
    response_model=PayoutOut,
    responses=_READ_ERRORS,
)
async def get_payout(
    payout_id: str,
    request: Request,
    caller: Caller = scoped("GET", "/v1/payouts/{payout_id}"),
) -> Response:
    """A payout of the tenant (another tenant's is a 404)."""
    payout = await gateway(request).payments.get_payout(
        ppb.GetPayoutRequest(id=payout_id), caller=caller
    )
    return json_out(payout_view(payout))


@router.get(
    "/v1/payouts",
    tags=["payouts"],
    summary="List payouts",
    response_model=PayoutList,
    responses=problem_responses(401, 403, 422, 503),
)
async def list_payouts(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size, 1-100.")] = 10,
    starting_after: Annotated[
        str | None, Query(max_length=64, description="The last payout id of the previous page.")
    ] = None,
    caller: Caller = scoped("GET", "/v1/payouts"),
) -> Response:
    """The tenant's payouts, newest first."""
    page = await gateway(request).payments.list_payouts(
        ppb.ListPayoutsRequest(limit=limit, starting_after=starting_after or ""), caller=caller
    )
    return json_out(PayoutList(data=[payout_view(o) for o in page.payouts], has_more=page.has_more))


@router.post(
    "/v1/transfers",
    tags=["transfers"],
    summary="Move money between two accounts",
    status_code=201,
    response_model=TransferOut,
    responses=with_account_problems(_WRITE_ERRORS),
)
async def post_transfer(
    body: CreateTransferIn,
    request: Request,
    idempotency_key: IdempotencyKey = None,
    caller: Caller = scoped("POST", "/v1/transfers"),
) -> Response:
    """Move money from one account of the tenant to another, at once.

    The answer is 201 with `succeeded`, or `failed` with a `failure_code`
    (e.g. `insufficient_funds`); no fee is charged. Both accounts are
    checked first: one that is not the tenant's (unknown, or another
    tenant's: the same answer) is a 404 `account_not_found`, one in another
    currency a 422 `currency_mismatch`; then no transfer is created.
    """
    gw = gateway(request)
    req = await keyed(request, caller, idempotency_key)

    async def run() -> Response:
        transfer = await gw.payments.create_transfer(
            ppb.CreateTransferRequest(
                id=req.object_id("tr"),
                from_account_id=body.from_account_id,
                to_account_id=body.to_account_id,
                amount=body.amount,
                currency=body.currency,
            ),
            caller=caller,
        )
        return json_out(
            transfer_view(transfer), 201, headers={"Location": f"/v1/transfers/{transfer.id}"}
        )

    return await req.run(run)


@router.get(
    "/v1/transfers/{transfer_id}",
    tags=["transfers"],
    summary="Get a transfer",
    response_model=TransferOut,
    responses=_READ_ERRORS,
)
async def get_transfer(
    transfer_id: str,
    request: Request,
    caller: Caller = scoped("GET", "/v1/transfers/{transfer_id}"),
) -> Response:
    """A transfer of the tenant (another tenant's is a 404)."""
    transfer = await gateway(request).payments.get_transfer(
        ppb.GetTransferRequest(id=transfer_id), caller=caller
    )
    return json_out(transfer_view(transfer))


@router.get(
    "/v1/transfers",
    tags=["transfers"],
    summary="List transfers",
    response_model=TransferList,
    responses=problem_responses(401, 403, 422, 503),
)
async def list_transfers(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size, 1-100.")] = 10,
    starting_after: Annotated[
        str | None, Query(max_length=64, description="The last transfer id of the previous page.")
    ] = None,
    caller: Caller = scoped("GET", "/v1/transfers"),
) -> Response:
    """The tenant's transfers between accounts, newest first."""
    page = await gateway(request).payments.list_transfers(
        ppb.ListTransfersRequest(limit=limit, starting_after=starting_after or ""), caller=caller
    )
    return json_out(
        TransferList(data=[transfer_view(o) for o in page.transfers], has_more=page.has_more)
    )
