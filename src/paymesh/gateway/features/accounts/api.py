"""REST routes for accounts and their ledger entries."""

from __future__ import annotations

from typing import Annotated

from starlette.responses import Response

from paymesh.contracts.accounts.v1 import accounts_pb2 as apb
from paymesh.gateway.deps import Accounts, json_out
from paymesh.gateway.domain import ACCOUNTS_READ, ACCOUNTS_WRITE
from paymesh.gateway.errors import NotFound
from paymesh.gateway.features.accounts.schemas import (
    AccountList,
    AccountOut,
    CreateAccountIn,
    EntryList,
)
from paymesh.gateway.features.accounts.views import account_view, entry_view
from paymesh.gateway.idempotency import KeyedRequest
from paymesh.gateway.pages import ITEMS_PROBLEMS, LIST_PROBLEMS, Gets, PageArgs, page_args, page_out
from paymesh.gateway.routing import Routes
from paymesh.gateway.writes import Writes, create
from paymesh.platform.identity import Caller

__all__ = ["routes"]

routes = Routes(tag="accounts")
gets = Gets(routes, ACCOUNTS_READ)
writes = Writes(routes, ACCOUNTS_WRITE, (400, 401, 403, 409, 422, 503))

AccountPage = Annotated[PageArgs, page_args("The last account id of the previous page.")]
EntryPage = Annotated[PageArgs, page_args("The id of the last item of the previous page.")]


async def _account(accounts: Accounts, caller: Caller, account_id: str) -> apb.Account:
    found = await accounts.call(
        accounts.stub.LookupAccounts, apb.LookupAccountsRequest(ids=[account_id]), caller
    )
    for account in found.accounts:
        if account.id == account_id:
            return account
    raise NotFound(f"no account {account_id}")


@writes.create("/v1/accounts", AccountOut, summary="Open an account")
async def post_account(
    body: CreateAccountIn, caller: Caller, keyed: KeyedRequest, accounts: Accounts
) -> Response:
    """Open a customer or merchant account; it may never be overdrawn."""
    request = apb.OpenAccountRequest(
        id=keyed.object_id("acct"),
        currency=body.currency,
        code=body.type,
        metadata=body.metadata or {},
    )
    return await create(
        accounts, accounts.stub.OpenAccount, request, caller, view=account_view, at="/v1/accounts"
    )


@gets.get("/v1/accounts", AccountList, summary="List accounts", problems=LIST_PROBLEMS)
async def list_accounts(caller: Caller, accounts: Accounts, page: AccountPage) -> Response:
    """The tenant's accounts with their balances, in ascending id order.

    Ids are opaque, so the order is stable from page to page but says nothing of age.
    """
    request = apb.ListAccountsRequest(limit=page.limit, starting_after=page.starting_after)
    found = await accounts.call(accounts.stub.ListAccounts, request, caller)
    return page_out(AccountList, account_view, found.accounts, found.has_more)


@gets.get("/v1/accounts/{account_id}", AccountOut, summary="Get an account and its balance")
async def get_account(account_id: str, caller: Caller, accounts: Accounts) -> Response:
    """The account with `balance: {available, pending, posted}`.

    posted = credits_posted - debits_posted; available = posted - debits_pending;
    pending = credits_pending - debits_pending.
    """
    return json_out(account_view(await _account(accounts, caller, account_id)))


@gets.get(
    "/v1/accounts/{account_id}/entries",
    EntryList,
    summary="List an account's ledger entries",
    problems=ITEMS_PROBLEMS,
)
async def list_entries(
    account_id: str, caller: Caller, accounts: Accounts, page: EntryPage
) -> Response:
    """The account's entries, newest first; amounts are signed (credit > 0, debit < 0)."""
    await _account(accounts, caller, account_id)
    request = apb.ListEntriesRequest(
        account_id=account_id, limit=page.limit, starting_after=page.starting_after
    )
    found = await accounts.call(accounts.stub.ListEntries, request, caller)
    return page_out(EntryList, entry_view, found.entries, found.has_more)
