"""The console's payment pages: today's summary, the payments list with its filters, a
payment and its actions (capture, cancel, refund, each behind a confirmation), and the
audit log."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.responses import Response

from paymesh.contracts.objects import to_json
from paymesh.contracts.payments.v1 import payments_pb2 as ppb
from paymesh.contracts.risk.v1 import risk_pb2 as rpb
from paymesh.contracts.webhooks.v1 import webhooks_pb2 as wpb
from paymesh.gateway.audit import record
from paymesh.gateway.console.core import PAGE, Console, View, day_us, iso, whole_amount
from paymesh.gateway.console.timeline import EVENTS_SCANNED, timeline
from paymesh.gateway.domain import RISK_ADMIN, WEBHOOKS_WRITE, derive_id

__all__ = ["audit", "home", "payment", "payment_action", "payments"]

_SCAN_MAX = 1000  # payments a filtered search looks through per page at most
_STATUSES = ("processing", "requires_capture", "succeeded", "canceled", "failed", "in_review")


async def home(c: Console, view: View) -> Response:
    """Today on the tenant: payments made today by status, volume, success rate."""
    gw, caller = c.gw, view.caller
    today = dt.datetime.now(dt.UTC).date().isoformat()
    found: list[dict[str, Any]] = []
    after, scanned, more = "", 0, True
    while more and scanned < _SCAN_MAX:
        page = await gw.payments.call(
            gw.payments.stub.ListPayments,
            ppb.ListPaymentsRequest(limit=100, starting_after=after),
            caller,
        )
        rows = [to_json(p) for p in page.payments]
        scanned += len(rows)
        todays = [r for r in rows if str(r["created"]).startswith(today)]
        found += todays
        more = page.has_more and len(todays) == len(rows) and bool(rows)
        after = rows[-1]["id"] if rows else ""
    by_status: dict[str, int] = {}
    failures: dict[str, int] = {}
    volume: dict[str, int] = {}
    hours = [0] * 24
    for p in found:
        hours[int(str(p["created"])[11:13])] += 1
        by_status[p["status"]] = by_status.get(p["status"], 0) + 1
        if p["status"] == "failed":
            code = p.get("failure_code") or "unknown"
            failures[code] = failures.get(code, 0) + 1
        if p["status"] == "succeeded":
            volume[p["currency"]] = volume.get(p["currency"], 0) + int(p["amount_captured"])
    done = by_status.get("succeeded", 0) + by_status.get("failed", 0)
    rate = f"{100 * by_status.get('succeeded', 0) / done:.1f} %" if done else "-"
    return c.render(
        view.request, "home.html", view=view, today=today, count=len(found),
        by_status=sorted(by_status.items()), failures=sorted(failures.items()),
        volume=sorted(volume.items()), rate=rate, capped=more, hours=hours,
        peak=max(hours) or 1,
        open_reviews=await _open_reviews(c, view), failing=await _failing_endpoints(c, view),
    )  # fmt: skip


async def _open_reviews(c: Console, view: View) -> int | None:
    """How many reviews are open (up to 100), for a role that sees them; else None."""
    if not view.can(RISK_ADMIN):
        return None
    risk = c.gw.risk
    found = await risk.call(risk.stub.ListReviews, rpb.ListReviewsRequest(limit=100), view.caller)
    return len(found.data)


async def _failing_endpoints(c: Console, view: View) -> list[dict[str, Any]] | None:
    """The webhook endpoints disabled for failing, for a role that sees them; else None."""
    if not view.can(WEBHOOKS_WRITE):
        return None
    hooks = c.gw.webhooks
    found = await hooks.call(
        hooks.stub.ListEndpoints, wpb.ListEndpointsRequest(limit=100), view.caller
    )
    # "operator": disabled on purpose (webhooks.proto, DisableEndpoint), not failing.
    return [
        {"id": e.id, "url": e.url, "reason": e.disabled_reason}
        for e in found.data
        if e.disabled_reason and e.disabled_reason != "operator"
    ]


async def payments(c: Console, view: View) -> Response:
    """The tenant's payments, newest first, filtered, a page at a time."""
    gw, q = c.gw, view.request.query_params
    wanted_id = q.get("id", "").strip()
    if wanted_id:
        return c.redirect(view.request, f"/payments/{wanted_id}")
    filters = _PaymentFilter.parse(q)
    rows: list[dict[str, Any]] = []
    after, scanned, more = q.get("after", ""), 0, True
    while more and len(rows) < PAGE and scanned < _SCAN_MAX:
        page = await gw.payments.call(
            gw.payments.stub.ListPayments,
            ppb.ListPaymentsRequest(limit=100, starting_after=after),
            view.caller,
        )
        for p in page.payments:
            scanned += 1
            after = p.id
            row = to_json(p)
            if filters.match(row):
                rows.append(row)
                if len(rows) == PAGE:
                    break
        more = page.has_more or (len(rows) == PAGE and after != page.payments[-1].id)
        if not page.payments:
            more = False
    next_query = {**filters.query(), "after": after} if more else None
    return c.render(
        view.request,
        "payments.html",
        view=view,
        rows=rows,
        filters=filters,
        statuses=_STATUSES,
        next_query=urlencode(next_query) if next_query else "",
        scanned=scanned,
    )


async def payment(c: Console, view: View) -> Response:
    """One payment: its state, risk decision, timeline (events, ledger transfers, webhook
    deliveries) and the actions its state allows."""
    found = await _payment(c, view, view.request.path_params["payment_id"])
    return c.render(
        view.request, "payment_detail.html", view=view, p=found, actions=_actions(found),
        t=await timeline(c, view, found), events_scanned=EVENTS_SCANNED,
    )  # fmt: skip


async def _payment(c: Console, view: View, payment_id: str) -> dict[str, Any]:
    """The payment `payment_id` of the session's tenant, in its JSON form."""
    gw = c.gw
    request = ppb.GetPaymentRequest(id=payment_id)
    payment = await gw.payments.call(gw.payments.stub.GetPayment, request, view.caller)
    return to_json(payment)


async def payment_action(c: Console, view: View) -> Response:
    """Confirm (GET) and do (POST) a capture, cancel or refund of a payment."""
    gw, request = c.gw, view.request
    payment_id, action = request.path_params["payment_id"], request.path_params["action"]
    if action not in ("capture", "cancel", "refund"):
        return c.error(request, 404, "no such page", view)
    found = await _payment(c, view, payment_id)
    if action not in _actions(found):
        return c.error(request, 409, f"a {found['status']} payment cannot be {action}d", view)
    if view.form is None:
        return _confirm(c, view, found, action)
    key = str(view.form.get("key", ""))[:64]
    try:
        amount = whole_amount(str(view.form.get("amount", "")))
    except ValueError as exc:
        return _confirm(c, view, found, action, error=str(exc), status=422)
    if not key:
        return _confirm(c, view, found, action, error="the form is stale", status=422)
    tenant = view.caller.tenant_id
    path = f"/console/payments/{payment_id}/{action}"

    def derive(prefix: str) -> str:
        return derive_id(prefix, tenant_id=tenant, key=key, path=path)

    if action == "capture":
        request_pb: Any = ppb.CapturePaymentRequest(
            id=payment_id, amount=amount, request_id=derive("capreq")
        )
        await gw.payments.call(gw.payments.stub.CapturePayment, request_pb, view.caller)
    elif action == "cancel":
        request_pb = ppb.CancelPaymentRequest(id=payment_id, request_id=derive("canreq"))
        await gw.payments.call(gw.payments.stub.CancelPayment, request_pb, view.caller)
    else:
        reason = str(view.form.get("reason", ""))[:200]
        request_pb = ppb.CreateRefundRequest(
            id=derive("re"), payment_id=payment_id, amount=amount, reason=reason
        )
        await gw.payments.call(gw.payments.stub.CreateRefund, request_pb, view.caller)
    await record(
        c.deps.store,
        c.deps.clock,
        view.origin,
        f"console.payment_{action}",
        tenant_id=tenant,
        target=payment_id,
        details={"amount": amount} if action != "cancel" else {},
    )
    return c.redirect(request, f"/payments/{payment_id}", done=action)


def _confirm(
    c: Console, view: View, p: dict[str, Any], action: str, *, error: str = "", status: int = 200
) -> Response:
    return c.render(
        view.request,
        "confirm.html",
        view=view,
        status=status,
        p=p,
        action=action,
        key=str(uuid.uuid4()),
        error=error,
    )


async def audit(c: Console, view: View) -> Response:
    """The audit log, newest first, filtered by actor, action and date (admins)."""
    q = view.request.query_params
    before = None
    if "before_at" in q and "before_id" in q:
        at = q["before_at"]
        if not (at.isascii() and at.isdigit() and len(at) <= 18):
            return c.error(view.request, 422, "before_at is a whole number of microseconds", view)
        before = (int(at), q["before_id"][:64])
    try:
        since = day_us(q.get("since", ""))
        until = day_us(q.get("until", ""), end=True)
    except (ValueError, OverflowError):
        return c.error(view.request, 422, "dates are YYYY-MM-DD", view)
    filters = {k: q.get(k, "")[:200] for k in ("actor", "action", "since", "until")}
    # An admin bound to a tenant reads that tenant's entries only.
    entries = await c.deps.store.audit_page(
        limit=PAGE + 1,
        before=before,
        tenant_id=view.signed.user.tenant_id,
        actor=filters["actor"] or None,
        action=filters["action"] or None,
        since_us=since,
        until_us=until,
    )
    more = len(entries) > PAGE
    entries = entries[:PAGE]
    next_query = ""
    if more:
        last = entries[-1]
        next_query = urlencode(
            {
                **{k: v for k, v in filters.items() if v},
                "before_at": last.at_us,
                "before_id": last.id,
            }
        )
    return c.render(
        view.request,
        "audit.html",
        view=view,
        entries=entries,
        filters=filters,
        next_query=next_query,
        iso=iso,
    )


def _actions(p: dict[str, Any]) -> list[str]:
    """What a payment's state allows."""
    if p["status"] == "requires_capture":
        return ["capture", "cancel"]
    if p["status"] == "succeeded" and int(p["amount_refunded"]) < int(p["amount_captured"]):
        return ["refund"]
    return []


@dataclass(frozen=True)
class _PaymentFilter:
    """The payments list's filters (all optional)."""

    status: str = ""
    account: str = ""
    amount_min: int | None = None
    amount_max: int | None = None
    since: str = ""
    until: str = ""

    @classmethod
    def parse(cls, q: Any) -> _PaymentFilter:
        def number(name: str) -> int | None:
            text = str(q.get(name, "")).strip()
            return int(text) if text.isascii() and text.isdigit() and len(text) <= 16 else None

        def day(name: str) -> str:
            text = str(q.get(name, "")).strip()
            try:
                return dt.date.fromisoformat(text).isoformat() if text else ""
            except ValueError:
                return ""

        status = str(q.get("status", ""))
        return cls(
            status=status if status in _STATUSES else "",
            account=str(q.get("account", "")).strip()[:64],
            amount_min=number("amount_min"),
            amount_max=number("amount_max"),
            since=day("since"),
            until=day("until"),
        )

    def match(self, p: dict[str, Any]) -> bool:
        """Whether payment `p` (its JSON form) passes every filter set."""
        created = str(p["created"])[:10]
        return (
            (not self.status or p["status"] == self.status)
            and (not self.account or self.account in (p["payer_account_id"], p["payee_account_id"]))
            and (self.amount_min is None or int(p["amount"]) >= self.amount_min)
            and (self.amount_max is None or int(p["amount"]) <= self.amount_max)
            and (not self.since or created >= self.since)
            and (not self.until or created <= self.until)
        )

    def query(self) -> dict[str, str]:
        """The filters as query parameters."""
        values = {
            "status": self.status,
            "account": self.account,
            "amount_min": "" if self.amount_min is None else str(self.amount_min),
            "amount_max": "" if self.amount_max is None else str(self.amount_max),
            "since": self.since,
            "until": self.until,
        }
        return {k: v for k, v in values.items() if v}
