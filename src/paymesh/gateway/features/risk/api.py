"""REST routes for risk: the rules in force, block and allow lists, and the review queue.

Every route needs the ``risk:admin`` scope and acts on the caller's tenant
(from the token): lists and reviews of another tenant are never shown. The
risk service is asked over gRPC (:class:`~paymesh.gateway.clients.Client`);
its stable error codes become problem responses (e.g. 409
``review_already_resolved``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from starlette.responses import Response

from paymesh.contracts.risk.v1 import risk_pb2 as rpb
from paymesh.gateway.deps import Audit, Risk, json_out
from paymesh.gateway.domain import RISK_ADMIN
from paymesh.gateway.errors import (
    NotFound,
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
from paymesh.gateway.idempotency import KeyedRequest
from paymesh.gateway.pages import ITEMS_PROBLEMS, LIST_PROBLEMS, Gets, PageArgs, page_args, page_out
from paymesh.gateway.routing import Routes
from paymesh.gateway.writes import Writes
from paymesh.platform.identity import Caller

__all__ = ["routes"]

routes = Routes()

gets = Gets(routes, RISK_ADMIN)
writes = Writes(routes, RISK_ADMIN, (400, 401, 403, 404, 409, 422, 503))

ListName = Annotated[
    str,
    Path(
        pattern=LIST_NAME,
        description="The list, as the rules file names it (e.g. `blocked_accounts`).",
    ),
]
EntryPage = Annotated[
    PageArgs, page_args("The last value of the previous page.", limit=20, max_length=256)
]
ReviewPage = Annotated[PageArgs, page_args("The last payment id of the previous page.", limit=20)]


@gets.get(
    "/v1/risk/rules",
    RulesOut,
    tag="risk",
    summary="Get the rules in force",
    problems=(401, 403, 503),
)
async def get_rules(caller: Caller, risk: Risk) -> Response:
    """The rule set risk decides with now: its version, the checksum of the rules file, the
    rules, and the last reload that was rejected (`last_error`; the version shown stays in
    force). A change of the rules file takes effect without a restart once it validates:
    poll until `checksum` is the new file's sha256."""
    info = await risk.call(risk.stub.GetRules, rpb.GetRulesRequest(), caller)
    return json_out(rules_view(info))


@gets.get(
    "/v1/risk/lists/{list_name}/entries",
    ListEntryList,
    tag="risk",
    summary="List a list's entries",
    problems=ITEMS_PROBLEMS,
)
async def list_entries(
    list_name: ListName, caller: Caller, risk: Risk, page: EntryPage
) -> Response:
    """The tenant's entries of a block or allow list, by value."""
    request = rpb.ListListEntriesRequest(
        list=list_name, limit=page.limit, starting_after=page.starting_after
    )
    found = await risk.call(risk.stub.ListListEntries, request, caller)
    return page_out(ListEntryList, list_entry_view, found.data, found.has_more)


@writes.create(
    "/v1/risk/lists/{list_name}/entries", ListEntryOut, tag="risk", summary="Add a value to a list"
)
async def post_list_entry(
    list_name: ListName,
    body: ListEntryIn,
    caller: Caller,
    audit: Audit,
    keyed: KeyedRequest,
    risk: Risk,
) -> Response:
    """Add a value (an account id, IP address, device id or country) to one of the
    tenant's lists. It takes effect for the next decision."""
    entry = await risk.call(
        risk.stub.AddListEntry,
        rpb.AddListEntryRequest(list=list_name, value=body.value, note=body.note or ""),
        caller,
    )
    await audit(caller, "risk.list_entry_added", target=f"{list_name}:{body.value}")
    return json_out(list_entry_view(entry), 201)


@routes.delete(
    "/v1/risk/lists/{list_name}/entries/{value}",
    scope=RISK_ADMIN,
    tag="risk",
    summary="Remove a value from a list",
    response_model=RemovedOut,
    problems=(401, 403, 404, 422, 503),
)
async def delete_list_entry(
    list_name: ListName,
    value: Annotated[str, Path(pattern=LIST_VALUE, description="The value to remove.")],
    caller: Caller,
    audit: Audit,
    risk: Risk,
) -> Response:
    """Remove a value from one of the tenant's lists (404 when it is not there). It takes
    effect for the next decision."""
    out = await risk.call(
        risk.stub.RemoveListEntry, rpb.RemoveListEntryRequest(list=list_name, value=value), caller
    )
    if not out.removed:
        raise NotFound(f"{value!r} is not in the list {list_name}")
    await audit(caller, "risk.list_entry_removed", target=f"{list_name}:{value}")
    return json_out(RemovedOut(removed=True))


@gets.get("/v1/reviews", ReviewList, tag="reviews", summary="List reviews", problems=LIST_PROBLEMS)
async def list_reviews(
    caller: Caller,
    risk: Risk,
    page: ReviewPage,
    status: Annotated[
        ReviewStatus, Query(description="open (the default), approved or declined.")
    ] = "open",
) -> Response:
    """The tenant's payments waiting for a human (or resolved ones), by payment id."""
    request = rpb.ListReviewsRequest(
        status=STATUSES[status], limit=page.limit, starting_after=page.starting_after
    )
    found = await risk.call(risk.stub.ListReviews, request, caller)
    return page_out(ReviewList, review_view, found.data, found.has_more)


@gets.get("/v1/reviews/{payment_id}", ReviewOut, tag="reviews", summary="Get a review")
async def get_review(payment_id: str, caller: Caller, audit: Audit, risk: Risk) -> Response:
    """The review of a payment of the tenant (404 when it had none)."""
    review = await risk.call(
        risk.stub.GetReview, rpb.GetReviewRequest(payment_id=payment_id), caller
    )
    return json_out(review_view(review))


def _declare_resolution(
    verb: str, resolution: rpb.Resolution.ValueType, resolved: str, doc: str
) -> None:
    """Declare ``POST /v1/reviews/{payment_id}/<verb>`` (handler ``<verb>_review``,
    described by `doc`): resolve the review with `resolution`, audited as
    ``risk.review_<resolved>``."""

    async def resolve(
        payment_id: str,
        caller: Caller,
        keyed: KeyedRequest,
        risk: Risk,
        audit: Audit,
        body: ResolveReviewIn | None = None,
    ) -> Response:
        request = rpb.ResolveReviewRequest(
            payment_id=payment_id,
            resolution=resolution,
            note=(body.note or "") if body is not None else "",
        )
        review = await risk.call(risk.stub.ResolveReview, request, caller)
        await audit(caller, f"risk.review_{resolved}", target=payment_id)
        return json_out(review_view(review))

    resolve.__name__ = resolve.__qualname__ = f"{verb}_review"
    resolve.__doc__ = doc
    summary = f"{verb.capitalize()} a payment in review"
    declare = writes.action(
        f"/v1/reviews/{{payment_id}}/{verb}", ReviewOut, tag="reviews", summary=summary
    )
    declare(resolve)


_declare_resolution(
    "approve",
    rpb.RESOLUTION_APPROVE,
    "approved",
    """Approve: the payment continues (captured at once, or `requires_capture` for a manual
    capture) shortly after, when payments receives `review.approved`. Approving again
    answers the review as it is; a declined review is 409 `review_already_resolved`.""",
)
_declare_resolution(
    "decline",
    rpb.RESOLUTION_DECLINE,
    "declined",
    """Decline: the payment's hold is released and it fails with `risk_declined`, shortly
    after, when payments receives `review.declined`. Declining again answers the review as
    it is; an approved review is 409 `review_already_resolved`.""",
)
