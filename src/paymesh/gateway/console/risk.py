"""The console's risk pages: the review queue (approve or decline with a note), the rules
in force, and the block and allow lists (add, remove). All need ``risk:admin``, as the
REST routes do, and act on the session's tenant."""

from __future__ import annotations

import re
from typing import Any

from starlette.responses import Response

from paymesh.contracts.risk.v1 import risk_pb2 as rpb
from paymesh.gateway.audit import record
from paymesh.gateway.console.core import PAGE, Console, View
from paymesh.gateway.features.risk.schemas import LIST_NAME, LIST_VALUE
from paymesh.gateway.features.risk.views import (
    STATUSES,
    list_entry_view,
    review_view,
    rules_view,
)

__all__ = ["list_entries", "open_list", "resolve_review", "review", "reviews", "rules"]

_LIST_NAME = re.compile(LIST_NAME)
_LIST_VALUE = re.compile(LIST_VALUE)
_RESOLUTIONS = {"approve": rpb.RESOLUTION_APPROVE, "decline": rpb.RESOLUTION_DECLINE}


def _dump(model: Any) -> dict[str, Any]:
    out: dict[str, Any] = model.model_dump(mode="json")
    return out


async def reviews(c: Console, view: View) -> Response:
    """The tenant's reviews of one status (open by default), a page at a time."""
    risk, q = c.gw.risk, view.request.query_params
    status = q.get("status", "open")
    wanted = next((v for k, v in STATUSES.items() if k == status), None)
    if wanted is None:
        status, wanted = "open", rpb.REVIEW_STATUS_OPEN
    after = q.get("after", "")[:64]
    found = await risk.call(
        risk.stub.ListReviews,
        rpb.ListReviewsRequest(status=wanted, limit=PAGE, starting_after=after),
        view.caller,
    )
    rows = [_dump(review_view(r)) for r in found.data]
    more = rows[-1]["payment_id"] if found.has_more and rows else ""
    return c.render(
        view.request, "reviews.html", view=view, rows=rows, shown=status, more=more,
        statuses=list(STATUSES),
    )  # fmt: skip


async def review(c: Console, view: View) -> Response:
    """One review, with the decision's reasons and, when open, the approve and decline forms."""
    risk = c.gw.risk
    payment_id = view.request.path_params["payment_id"]
    found = await risk.call(
        risk.stub.GetReview, rpb.GetReviewRequest(payment_id=payment_id), view.caller
    )
    return c.render(view.request, "review_detail.html", view=view, r=_dump(review_view(found)))


async def resolve_review(c: Console, view: View) -> Response:
    """Approve or decline a review (POST, with a note)."""
    risk, request = c.gw.risk, view.request
    payment_id, verb = request.path_params["payment_id"], request.path_params["verb"]
    if verb not in _RESOLUTIONS or view.form is None:
        return c.error(request, 404, "no such page", view)
    note = str(view.form.get("note", "")).strip()[:500]
    await risk.call(
        risk.stub.ResolveReview,
        rpb.ResolveReviewRequest(payment_id=payment_id, resolution=_RESOLUTIONS[verb], note=note),
        view.caller,
    )
    await record(
        c.deps.store, c.deps.clock, view.origin, f"console.review_{verb}d",
        tenant_id=view.caller.tenant_id, target=payment_id, details={"note": note},
    )  # fmt: skip
    return c.redirect(request, f"/risk/reviews/{payment_id}", done=f"{verb}d")


async def rules(c: Console, view: View) -> Response:
    """The rule set in force: version, checksum, each rule, the last rejected reload."""
    risk = c.gw.risk
    info = await risk.call(risk.stub.GetRules, rpb.GetRulesRequest(), view.caller)
    return c.render(view.request, "rules.html", view=view, rules=_dump(rules_view(info)))


async def list_entries(c: Console, view: View) -> Response:
    """A block or allow list's entries (GET); add (POST ``add``) or remove (POST ``remove``)
    an entry."""
    risk, request = c.gw.risk, view.request
    name = request.path_params["list_name"]
    if not _LIST_NAME.match(name):
        return c.error(request, 404, "no such list", view)
    error = ""
    if view.form is not None:
        value = str(view.form.get("value", "")).strip()
        if not _LIST_VALUE.match(value) or "/" in value:
            error = "a value has 1 to 256 characters, no '/' and no surrounding spaces"
        elif view.form.get("op") == "remove":
            await risk.call(
                risk.stub.RemoveListEntry,
                rpb.RemoveListEntryRequest(list=name, value=value),
                view.caller,
            )
            await _audit(c, view, "console.list_entry_removed", f"{name}:{value}")
            return c.redirect(request, f"/risk/lists/{name}", done="removed")
        else:
            note = str(view.form.get("note", "")).strip()[:500]
            await risk.call(
                risk.stub.AddListEntry,
                rpb.AddListEntryRequest(list=name, value=value, note=note),
                view.caller,
            )
            await _audit(c, view, "console.list_entry_added", f"{name}:{value}")
            return c.redirect(request, f"/risk/lists/{name}", done="added")
    after = request.query_params.get("after", "")[:256]
    found = await risk.call(
        risk.stub.ListListEntries,
        rpb.ListListEntriesRequest(list=name, limit=PAGE, starting_after=after),
        view.caller,
    )
    rows = [_dump(list_entry_view(e)) for e in found.data]
    more = rows[-1]["value"] if found.has_more and rows else ""
    return c.render(
        request, "list.html", view=view, status=422 if error else 200, list_name=name, rows=rows,
        more=more, error=error,
    )  # fmt: skip


async def _audit(c: Console, view: View, action: str, target: str) -> None:
    await record(
        c.deps.store, c.deps.clock, view.origin, action,
        tenant_id=view.caller.tenant_id, target=target,
    )  # fmt: skip


async def open_list(c: Console, view: View) -> Response:
    """The list named in the query (``?name=``)."""
    name = view.request.query_params.get("name", "").strip()
    if not _LIST_NAME.match(name):
        return c.error(view.request, 422, "a list name is lower case letters, digits and _", view)
    return c.redirect(view.request, f"/risk/lists/{name}")
