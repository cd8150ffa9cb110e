"""A payment's timeline for its console page: its events (and its refunds'), the ledger
transfers it made, and the webhook deliveries of those events, each read through the
services' APIs with the session's caller.

The services have no "by payment" queries for events and deliveries, so this reads the
newest of them, within bounds (EVENTS_SCANNED, DELIVERIES_SCANNED), and says when it
stopped short. The ledger transfers are looked up by the ids the payment's saga gives
them (``<payment>:hold``, ``:capture``, ``:void``, ``:fee``, the hold's expiry void,
and each refund's id), so they are exact.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from paymesh.contracts.accounts.v1 import accounts_pb2 as apb
from paymesh.contracts.events import format_time
from paymesh.contracts.payments.v1 import payments_pb2 as ppb
from paymesh.contracts.webhooks.v1 import webhooks_pb2 as wpb
from paymesh.gateway.console.core import Console, View
from paymesh.gateway.domain import ACCOUNTS_READ, WEBHOOKS_WRITE
from paymesh.gateway.features.webhooks.views import delivery_view

__all__ = ["DELIVERIES_SCANNED", "EVENTS_SCANNED", "Timeline", "timeline"]

EVENTS_SCANNED = 1000  # the tenant's newest events read for one payment's
DELIVERIES_SCANNED = 100  # each endpoint's newest deliveries read
_ENDPOINTS = 20  # endpoints looked at
_SUFFIXES = (":hold", ":capture", ":void", ":hold:expired", ":fee")


@dataclass
class Timeline:
    """What happened to a payment, oldest first."""

    events: list[dict[str, Any]] = field(default_factory=list)
    transfers: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    # Where the reading stopped short (older items may be missing).
    events_capped: bool = False
    deliveries_shown: bool = False


async def timeline(c: Console, view: View, payment: dict[str, Any]) -> Timeline:
    """The timeline of `payment` (its JSON form)."""
    out = Timeline()
    refund_ids = await _events(c, view, payment["id"], out)
    if view.can(ACCOUNTS_READ):
        await _transfers(c, view, payment["id"], refund_ids, out)
    if view.can(WEBHOOKS_WRITE):
        await _deliveries(c, view, out)
    return out


async def _events(c: Console, view: View, payment_id: str, out: Timeline) -> list[str]:
    """The payment's events and its refunds' into `out`; the refund ids."""
    stub = c.gw.payments
    after, read, refunds = "", 0, []
    while read < EVENTS_SCANNED:
        page = await stub.call(
            stub.stub.ListEvents,
            ppb.ListEventsRequest(limit=100, starting_after=after),
            view.caller,
        )
        for e in page.events:
            read += 1
            data = json.loads(e.json).get("data") or {}
            refund = e.type.startswith("refund.") and data.get("payment_id") == payment_id
            if e.subject == payment_id or refund:
                out.events.append(
                    {"id": e.id, "type": e.type, "created": format_time(e.created_at_us),
                     "subject": e.subject}
                )  # fmt: skip
                if refund and e.subject not in refunds:
                    refunds.append(e.subject)
        if not page.has_more or not page.events:
            break
        after = page.events[-1].id
    else:
        out.events_capped = True
    out.events.reverse()
    return refunds


async def _transfers(
    c: Console, view: View, payment_id: str, refund_ids: list[str], out: Timeline
) -> None:
    stub = c.gw.accounts
    ids = [payment_id + s for s in _SUFFIXES] + refund_ids
    found = await stub.call(
        stub.stub.LookupTransfers, apb.LookupTransfersRequest(ids=ids), view.caller
    )
    for t in sorted(found.transfers, key=lambda t: (t.created_at_us, t.id)):
        flags = t.flags
        kind = (
            "hold" if flags.pending else
            "post of the hold" if flags.post_pending else
            "release of the hold" if flags.void_pending else "transfer"
        )  # fmt: skip
        out.transfers.append(
            {"id": t.id, "code": t.code, "kind": kind, "amount": t.amount,
             "currency": t.currency, "debit": t.debit_account_id,
             "credit": t.credit_account_id, "created": format_time(t.created_at_us)}
        )  # fmt: skip


async def _deliveries(c: Console, view: View, out: Timeline) -> None:
    stub = c.gw.webhooks
    wanted = {e["id"] for e in out.events}
    if not wanted:
        return
    endpoints = await stub.call(
        stub.stub.ListEndpoints, wpb.ListEndpointsRequest(limit=_ENDPOINTS), view.caller
    )
    for endpoint in endpoints.data:
        log = await stub.call(
            stub.stub.ListDeliveries,
            wpb.ListDeliveriesRequest(endpoint_id=endpoint.id, limit=DELIVERIES_SCANNED),
            view.caller,
        )
        for d in log.data:
            if d.event_id in wanted:
                row: dict[str, Any] = delivery_view(d).model_dump(mode="json")
                row["url"] = endpoint.url
                out.deliveries.append(row)
    out.deliveries.sort(key=lambda d: (d["created"], d["id"]))
    out.deliveries_shown = True
