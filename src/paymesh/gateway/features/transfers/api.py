"""REST routes for top-ups, payouts and P2P transfers."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from starlette.responses import Response

from paymesh.contracts.payments.v1 import payments_pb2 as ppb
from paymesh.gateway.deps import Payments, json_out
from paymesh.gateway.domain import PAYMENTS_WRITE
from paymesh.gateway.features.transfers.schemas import (
    CreatePayoutIn,
    CreateTopupIn,
    CreateTransferIn,
    PayoutOut,
    TopupOut,
    TopupReversalOut,
    TransferOut,
)
from paymesh.gateway.features.transfers.views import (
    payout_view,
    topup_reversal_view,
    topup_view,
    transfer_view,
)
from paymesh.gateway.idempotency import KeyedRequest
from paymesh.gateway.pages import declare_reads
from paymesh.gateway.reads import PAYOUTS, TOPUPS, TRANSFERS
from paymesh.gateway.routing import Routes
from paymesh.gateway.writes import Writes, create
from paymesh.platform.identity import Caller

__all__ = ["routes"]

routes = Routes()

Request = TypeVar("Request")


def _funding(
    make: Callable[..., Request], id: str, body: CreateTopupIn | CreatePayoutIn
) -> Request:
    """The request of a top-up or a payout `id`: both move `body`'s amount between
    an account and the external funding source."""
    return make(id=id, account_id=body.account_id, amount=body.amount, currency=body.currency)


writes = Writes(routes, PAYMENTS_WRITE, (400, 401, 403, 404, 409, 422, 429, 503), moves_money=True)


@writes.create(
    "/v1/topups", TopupOut, tag="topups", summary="Fund an account", account_problems=True
)
async def post_topup(
    body: CreateTopupIn, caller: Caller, keyed: KeyedRequest, payments: Payments
) -> Response:
    """Move money from the external funding source into an account.

    An account that is not the tenant's (unknown, or another tenant's: the
    same answer) is a 404 `account_not_found`, one in another currency a 422
    `currency_mismatch`; then no top-up is created.
    """
    request = _funding(ppb.CreateTopupRequest, keyed.object_id("tu"), body)
    return await create(
        payments, payments.stub.CreateTopup, request, caller, view=topup_view, at="/v1/topups"
    )


declare_reads(routes, TOPUPS)


@writes.action(
    "/v1/topups/{topup_id}/reverse", TopupReversalOut, tag="topups", summary="Reverse a top-up"
)
async def reverse_topup(
    topup_id: str, caller: Caller, keyed: KeyedRequest, payments: Payments
) -> Response:
    """Send a succeeded top-up's money back from its account to the external funding source.

    A top-up is reversed at most once: asking again answers the same
    reversal, in whatever state it reached. An account that no longer has
    the money fails the reversal with `insufficient_funds` (nothing moves).
    A top-up not `succeeded` is a 409 `invalid_state`.
    """
    reversal = await payments.call(
        payments.stub.ReverseTopup, ppb.ReverseTopupRequest(topup_id=topup_id), caller
    )
    return json_out(topup_reversal_view(reversal))


@writes.create(
    "/v1/payouts",
    PayoutOut,
    tag="payouts",
    summary="Send money out of an account",
    account_problems=True,
)
async def post_payout(
    body: CreatePayoutIn, caller: Caller, keyed: KeyedRequest, payments: Payments
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
    request = _funding(ppb.CreatePayoutRequest, keyed.object_id("po"), body)
    return await create(
        payments, payments.stub.CreatePayout, request, caller, view=payout_view, at="/v1/payouts"
    )


declare_reads(routes, PAYOUTS)


@writes.create(
    "/v1/transfers",
    TransferOut,
    tag="transfers",
    summary="Move money between two accounts",
    account_problems=True,
)
async def post_transfer(
    body: CreateTransferIn, caller: Caller, keyed: KeyedRequest, payments: Payments
) -> Response:
    """Move money from one account of the tenant to another, at once.

    The answer is 201 with `succeeded`, or `failed` with a `failure_code`
    (e.g. `insufficient_funds`); no fee is charged. Both accounts are
    checked first: one that is not the tenant's (unknown, or another
    tenant's: the same answer) is a 404 `account_not_found`, one in another
    currency a 422 `currency_mismatch`; then no transfer is created.
    """
    request = ppb.CreateTransferRequest(
        id=keyed.object_id("tr"),
        from_account_id=body.from_account_id,
        to_account_id=body.to_account_id,
        amount=body.amount,
        currency=body.currency,
    )
    return await create(
        payments,
        payments.stub.CreateTransfer,
        request,
        caller,
        view=transfer_view,
        at="/v1/transfers",
    )


declare_reads(routes, TRANSFERS)
