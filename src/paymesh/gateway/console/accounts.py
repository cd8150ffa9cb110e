"""The console's account pages: the tenant's accounts with their balances, an account's
balances and paginated statement of entries, and the statement as CSV. They need
``accounts:read``, as the REST routes do."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import Response, StreamingResponse

from paymesh.contracts.accounts.v1 import accounts_pb2 as apb
from paymesh.gateway.audit import record
from paymesh.gateway.console.core import PAGE, Console, View
from paymesh.gateway.errors import NotFound
from paymesh.gateway.features.accounts.views import account_view, entry_view

__all__ = ["account", "accounts", "statement_csv"]

# A CSV export holds at most this many entries (newest first); the page says so.
CSV_MAX_ROWS = 100_000
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _dump(model: Any) -> dict[str, Any]:
    out: dict[str, Any] = model.model_dump(mode="json")
    return out


async def accounts(c: Console, view: View) -> Response:
    """The tenant's accounts in id order with their balances; ``?id=`` opens one."""
    stub, q = c.gw.accounts, view.request.query_params
    wanted = q.get("id", "").strip()
    if wanted:
        return c.redirect(view.request, f"/accounts/{wanted[:64]}")
    after = q.get("after", "")[:64]
    found = await stub.call(
        stub.stub.ListAccounts,
        apb.ListAccountsRequest(limit=PAGE, starting_after=after),
        view.caller,
    )
    rows = [_dump(account_view(a)) for a in found.accounts]
    more = rows[-1]["id"] if found.has_more and rows else ""
    return c.render(view.request, "accounts.html", view=view, rows=rows, more=more)


async def _account(c: Console, view: View, account_id: str) -> apb.Account:
    stub = c.gw.accounts
    found = await stub.call(
        stub.stub.LookupAccounts, apb.LookupAccountsRequest(ids=[account_id]), view.caller
    )
    for a in found.accounts:
        if a.id == account_id:
            return a
    raise NotFound(f"no account {account_id[:64]}")


async def account(c: Console, view: View) -> Response:
    """An account's balances and a page of its statement (entries, newest first)."""
    stub, request = c.gw.accounts, view.request
    account_id = request.path_params["account_id"]
    found = await _account(c, view, account_id)
    after = request.query_params.get("after", "")[:128]
    page = await stub.call(
        stub.stub.ListEntries,
        apb.ListEntriesRequest(account_id=account_id, limit=PAGE, starting_after=after),
        view.caller,
    )
    rows = [_dump(entry_view(e)) for e in page.entries]
    more = rows[-1]["id"] if page.has_more and rows else ""
    return c.render(
        request, "account.html", view=view, a=_dump(account_view(found)), rows=rows, more=more,
        csv_max=CSV_MAX_ROWS,
    )  # fmt: skip


def _cell(value: object) -> object:
    """A CSV cell that a spreadsheet will not run as a formula."""
    if isinstance(value, str) and value.startswith(_FORMULA):
        return f"'{value}"
    return value


async def statement_csv(c: Console, view: View) -> Response:
    """The account's statement as CSV (newest first, at most CSV_MAX_ROWS entries)."""
    stub = c.gw.accounts
    account_id = view.request.path_params["account_id"]
    await _account(c, view, account_id)  # 404 before any header is sent
    caller = view.caller

    async def rows() -> AsyncIterator[str]:
        buffer = io.StringIO()
        out = csv.writer(buffer)
        out.writerow(
            ["transfer_id", "created", "type", "status", "amount", "currency", "reference"]
        )
        after, sent = "", 0
        while sent < CSV_MAX_ROWS:
            page = await stub.call(
                stub.stub.ListEntries,
                apb.ListEntriesRequest(account_id=account_id, limit=100, starting_after=after),
                caller,
            )
            for e in page.entries[: CSV_MAX_ROWS - sent]:
                d = entry_view(e)
                out.writerow(
                    [_cell(v) for v in (d.id, d.created, d.type, d.status)]
                    + [d.amount, d.currency, _cell(d.reference)]
                )
                sent += 1
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if not page.has_more or not page.entries:
                break
            after = page.entries[-1].transfer.id

    await record(
        c.deps.store, c.deps.clock, view.origin, "console.statement_exported",
        tenant_id=caller.tenant_id, target=account_id,
    )  # fmt: skip
    name = f"statement-{account_id}.csv"
    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
