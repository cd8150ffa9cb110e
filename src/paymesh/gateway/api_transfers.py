"""REST routes for payouts, P2P transfers and the tenant's events."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from paymesh.contracts.payments.v1 import payments_pb2 as ppb
from paymesh.gateway.deps import IdempotencyKey, gateway, json_out, keyed, scoped
from paymesh.gateway.problems import problem_responses, with_account_problems
from paymesh.gateway.schemas import (
    CreatePayoutIn,
    CreateTransferIn,
    EventList,
    EventOut,
    PayoutList,
    PayoutOut,
    TransferList,
    TransferOut,
)
from paymesh.gateway.views import event_view, payout_view, transfer_view
from paymesh.platform.identity import Caller

__all__ = ["router"]

router = APIRouter()

_WRITE_ERRORS = problem_responses(400, 401, 403, 404, 409, 422, 429, 503)
_READ_ERRORS = problem_responses(401, 403, 404, 503)


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


@router.get(
    "/v1/events",
    tags=["events"],
    summary="List events",
    response_model=EventList,
    responses=problem_responses(401, 403, 422, 503),
)
async def list_events(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size, 1-100.")] = 10,
    starting_after: Annotated[
        str | None, Query(max_length=64, description="The last event id of the previous page.")
    ] = None,
    caller: Caller = scoped("GET", "/v1/events"),
) -> Response:
    """The tenant's events, newest first: the CloudEvents that webhooks deliver."""
    page = await gateway(request).payments.list_events(
        ppb.ListEventsRequest(limit=limit, starting_after=starting_after or ""), caller=caller
    )
    return json_out(EventList(data=[event_view(e) for e in page.events], has_more=page.has_more))


@router.get(
    "/v1/events/{event_id}",
    tags=["events"],
    summary="Get an event",
    response_model=EventOut,
    responses=_READ_ERRORS,
)
async def get_event(
    event_id: str,
    request: Request,
    caller: Caller = scoped("GET", "/v1/events/{event_id}"),
) -> Response:
    """An event of the tenant (another tenant's is a 404)."""
    event = await gateway(request).payments.get_event(
        ppb.GetEventRequest(id=event_id), caller=caller
    )
    return json_out(event_view(event))
