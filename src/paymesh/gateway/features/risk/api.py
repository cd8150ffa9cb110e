"""REST routes for risk: the rules in force, block and allow lists, and the review queue.

Every route needs the ``risk:admin`` scope and acts on the caller's tenant
(from the token): lists and reviews of another tenant are never shown. The
risk service is asked over gRPC (:class:`~paymesh.gateway.backends.RiskBackend`);
its stable error codes become problem responses (e.g. 409
``review_already_resolved``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from paymesh.contracts.risk.v1 import risk_pb2 as rpb
from paymesh.gateway.backends import RiskBackend
from paymesh.gateway.deps import IdempotencyKey, audit, gateway, json_out, keyed, scoped
from paymesh.gateway.errors import (
    NotFound,
    ServiceUnavailable,
)
from paymesh.gateway.features.risk.schemas import (
    LIST_NAME,
    LIST_VALUE,
    ListEntryIn,
    ListEntryList,
    ListEntryOut,
    RemovedOut,
    ResolveReviewIn,
    ReviewList,
    ReviewOut,
    ReviewStatus,
    RulesOut,
)
from paymesh.gateway.features.risk.views import STATUSES, list_entry_view, review_view, rules_view
from paymesh.gateway.problems import problem_responses
from paymesh.platform.identity import Caller

__all__ = ["router"]

router = APIRouter()


_READ_ERRORS = problem_responses(401, 403, 404, 422, 503)

_WRITE_ERRORS = problem_responses(400, 401, 403, 404, 409, 422, 503)

ListName = Annotated[
    str,
    Path(
        pattern=LIST_NAME,
        description="The list, as the rules file names it (e.g. `blocked_accounts`).",
    ),
]

ListLimit = Annotated[int, Query(ge=1, le=100, description="Page size, 1-100.")]


def _risk(request: Request) -> RiskBackend:
    risk = gateway(request).risk
    if risk is None:
        raise ServiceUnavailable("the risk service is not configured")
    return risk


@router.get(
    "/v1/risk/rules",
    tags=["risk"],
    summary="Get the rules in force",
    response_model=RulesOut,
    responses=problem_responses(401, 403, 503),
)
async def get_rules(request: Request, caller: Caller = scoped("GET", "/v1/risk/rules")) -> Response:
    """The rule set risk decides with now: its version, the checksum of the rules file, the
    rules, and the last reload that was rejected (`last_error`; the version shown stays in
    force). A change of the rules file takes effect without a restart once it validates:
    poll until `checksum` is the new file's sha256."""
    info = await _risk(request).get_rules(rpb.GetRulesRequest(), caller=caller)
    return json_out(rules_view(info))


@router.get(
    "/v1/risk/lists/{list_name}/entries",
    tags=["risk"],
    summary="List a list's entries",
    response_model=ListEntryList,
    responses=_READ_ERRORS,
)
async def list_entries(
    list_name: ListName,
    request: Request,
    limit: ListLimit = 20,
    starting_after: Annotated[
        str | None, Query(max_length=256, description="The last value of the previous page.")
    ] = None,
    caller: Caller = scoped("GET", "/v1/risk/lists/{list_name}/entries"),
) -> Response:
    """The tenant's entries of a block or allow list, by value."""
    page = await _risk(request).list_list_entries(
        rpb.ListListEntriesRequest(
            list=list_name, limit=limit, starting_after=starting_after or ""
        ),
        caller=caller,
    )
    return json_out(
        ListEntryList(data=[list_entry_view(e) for e in page.data], has_more=page.has_more)
    )


@router.post(
    "/v1/risk/lists/{list_name}/entries",
    tags=["risk"],
    summary="Add a value to a list",
    status_code=201,
    response_model=ListEntryOut,
    responses=_WRITE_ERRORS,
)
async def post_list_entry(
    list_name: ListName,
    body: ListEntryIn,
    request: Request,
    idempotency_key: IdempotencyKey = None,
    caller: Caller = scoped("POST", "/v1/risk/lists/{list_name}/entries"),
) -> Response:
    """Add a value (an account id, IP address, device id or country) to one of the
    tenant's lists. It takes effect for the next decision."""
    req = await keyed(request, caller, idempotency_key)

    async def run() -> Response:
        entry = await _risk(request).add_list_entry(
            rpb.AddListEntryRequest(list=list_name, value=body.value, note=body.note or ""),
            caller=caller,
        )
        await audit(request, caller, "risk.list_entry_added", target=f"{list_name}:{body.value}")
        return json_out(list_entry_view(entry), 201)

    return await req.run(run)


@router.delete(
    "/v1/risk/lists/{list_name}/entries/{value}",
    tags=["risk"],
    summary="Remove a value from a list",
    response_model=RemovedOut,
    responses=problem_responses(401, 403, 404, 422, 503),
)
async def delete_list_entry(
    list_name: ListName,
    value: Annotated[str, Path(pattern=LIST_VALUE, description="The value to remove.")],
    request: Request,
    caller: Caller = scoped("DELETE", "/v1/risk/lists/{list_name}/entries/{value}"),
) -> Response:
    """Remove a value from one of the tenant's lists (404 when it is not there). It takes
    effect for the next decision."""
    out = await _risk(request).remove_list_entry(
        rpb.RemoveListEntryRequest(list=list_name, value=value), caller=caller
    )
    if not out.removed:
        raise NotFound(f"{value!r} is not in the list {list_name}")
    await audit(request, caller, "risk.list_entry_removed", target=f"{list_name}:{value}")
    return json_out(RemovedOut(removed=True))


@router.get(
    "/v1/reviews",
    tags=["reviews"],
    summary="List reviews",
    response_model=ReviewList,
    responses=problem_responses(401, 403, 422, 503),
)
async def list_reviews(
    request: Request,
    status: Annotated[
        ReviewStatus, Query(description="open (the default), approved or declined.")
    ] = "open",
    limit: ListLimit = 20,
    starting_after: Annotated[
        str | None,
        Query(max_length=64, description="The last payment id of the previous page."),
    ] = None,
    caller: Caller = scoped("GET", "/v1/reviews"),
) -> Response:
    """The tenant's payments waiting for a human (or resolved ones), by payment id."""
    page = await _risk(request).list_reviews(
        rpb.ListReviewsRequest(
            status=STATUSES[status], limit=limit, starting_after=starting_after or ""
        ),
        caller=caller,
    )
    return json_out(ReviewList(data=[review_view(r) for r in page.data], has_more=page.has_more))


@router.get(
    "/v1/reviews/{payment_id}",
    tags=["reviews"],
    summary="Get a review",
    response_model=ReviewOut,
    responses=problem_responses(401, 403, 404, 503),
)
async def get_review(
    payment_id: str,
    request: Request,
    caller: Caller = scoped("GET", "/v1/reviews/{payment_id}"),
) -> Response:
    """The review of a payment of the tenant (404 when it had none)."""
    review = await _risk(request).get_review(
        rpb.GetReviewRequest(payment_id=payment_id), caller=caller
    )
    return json_out(review_view(review))


async def _resolve(
    request: Request,
    caller: Caller,
    payment_id: str,
    body: ResolveReviewIn | None,
    idempotency_key: str | None,
    resolution: rpb.Resolution.ValueType,
) -> Response:
    req = await keyed(request, caller, idempotency_key)

    async def run() -> Response:
        review = await _risk(request).resolve_review(
            rpb.ResolveReviewRequest(
                payment_id=payment_id,
                resolution=resolution,
                note=(body.note or "") if body is not None else "",
            ),
            caller=caller,
        )
        action = "approved" if resolution == rpb.RESOLUTION_APPROVE else "declined"
        await audit(request, caller, f"risk.review_{action}", target=payment_id)
        return json_out(review_view(review))

    return await req.run(run)


@router.post(
    "/v1/reviews/{payment_id}/approve",
    tags=["reviews"],
    summary="Approve a payment in review",
    response_model=ReviewOut,
    responses=_WRITE_ERRORS,
)
async def approve_review(
    payment_id: str,
    request: Request,
    body: ResolveReviewIn | None = None,
    idempotency_key: IdempotencyKey = None,
    caller: Caller = scoped("POST", "/v1/reviews/{payment_id}/approve"),
) -> Response:
    """Approve: the payment continues (captured at once, or `requires_capture` for a manual
    capture) shortly after, when payments receives `review.approved`. Approving again
    answers the review as it is; a declined review is 409 `review_already_resolved`."""
    return await _resolve(
        request, caller, payment_id, body, idempotency_key, rpb.RESOLUTION_APPROVE
    )


@router.post(
    "/v1/reviews/{payment_id}/decline",
    tags=["reviews"],
    summary="Decline a payment in review",
    response_model=ReviewOut,
    responses=_WRITE_ERRORS,
)
async def decline_review(
    payment_id: str,
    request: Request,
    body: ResolveReviewIn | None = None,
    idempotency_key: IdempotencyKey = None,
    caller: Caller = scoped("POST", "/v1/reviews/{payment_id}/decline"),
) -> Response:
    """Decline: the payment's hold is released and it fails with `risk_declined`, shortly
    after, when payments receives `review.declined`. Declining again answers the review as
    it is; an approved review is 409 `review_already_resolved`."""
    return await _resolve(
        request, caller, payment_id, body, idempotency_key, rpb.RESOLUTION_DECLINE
    )
