"""REST routes for accounts, their bank details and their ledger entries."""

from __future__ import annotations

from typing import Annotated

from starlette.responses import Response

from paymesh.contracts.accounts.v1 import accounts_pb2 as apb
from paymesh.gateway.deps import Accounts, Audit, json_out
from paymesh.gateway.domain import ACCOUNTS_READ, ACCOUNTS_WRITE
from paymesh.gateway.errors import NotFound, UpstreamError
from paymesh.gateway.features.accounts.schemas import (
    AccountList,
    AccountOut,
    BankAccountIn,
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

# The bank details' routes: PUT and DELETE are idempotent by nature (no Idempotency-Key).
_BANK_PROBLEMS = (400, 401, 403, 404, 422, 503)
_BANK_ACCOUNT_SET = "account.bank_account_set"
_BANK_ACCOUNT_REMOVED = "account.bank_account_removed"

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


def _bank_account_pb(body: BankAccountIn) -> apb.BankAccount:
    return apb.BankAccount(iban=body.iban, bic=body.bic, name=body.name)


def _audited(bank: BankAccountIn) -> dict[str, object]:
    """What the audit log keeps of bank details: the IBAN's country and last four, the BIC."""
    return {"iban": f"{bank.iban[:2]}…{bank.iban[-4:]}", "bic": bank.bic}


@writes.create("/v1/accounts", AccountOut, summary="Open an account")
async def post_account(
    body: CreateAccountIn, caller: Caller, audit: Audit, keyed: KeyedRequest, accounts: Accounts
) -> Response:
    """Open a customer or merchant account; it may never be overdrawn.

    `bank_account` (optional, also settable later with `PUT
    /v1/accounts/{account_id}/bank_account`) is where settlement payouts by bank file go:
    an invalid IBAN, BIC or name is 422 `validation_error` naming the field.
    """
    request = apb.OpenAccountRequest(
        id=keyed.object_id("acct"),
        currency=body.currency,
        code=body.type,
        metadata=body.metadata or {},
        bank_account=None if body.bank_account is None else _bank_account_pb(body.bank_account),
    )
    response = await create(
        accounts, accounts.stub.OpenAccount, request, caller, view=account_view, at="/v1/accounts"
    )
    if body.bank_account is not None:
        await audit(
            caller, _BANK_ACCOUNT_SET, target=request.id, details=_audited(body.bank_account)
        )
    return response


async def _change_bank_account(
    accounts: Accounts, account_id: str, caller: Caller, bank: BankAccountIn | None
) -> apb.Account:
    """Set (None: remove) the account's bank details; 404 for none of the tenant's."""
    try:
        if bank is None:
            request = apb.RemoveBankAccountRequest(account_id=account_id)
            return await accounts.call(accounts.stub.RemoveBankAccount, request, caller)
        set_request = apb.SetBankAccountRequest(
            account_id=account_id, bank_account=_bank_account_pb(bank)
        )
        return await accounts.call(accounts.stub.SetBankAccount, set_request, caller)
    except UpstreamError as exc:
        if exc.code == "account_not_found":  # the same answer as GET /v1/accounts/{id}
            raise NotFound(f"no account {account_id}") from None
        raise


@routes.put(
    "/v1/accounts/{account_id}/bank_account",
    scope=ACCOUNTS_WRITE,
    summary="Set an account's bank details",
    response_model=AccountOut,
    problems=_BANK_PROBLEMS,
)
async def put_bank_account(
    account_id: str, body: BankAccountIn, caller: Caller, audit: Audit, accounts: Accounts
) -> Response:
    """Set or replace where the account's settlement payouts by bank file go; answers the
    account. Sending the same details again changes nothing (no Idempotency-Key needed).

    The IBAN (country, length, format, check digits) is stored without spaces in upper
    case, the BIC (8 or 11 characters, of the IBAN's country) in upper case, the name
    (1-70 printable characters) without surrounding whitespace; an invalid one is 422
    `validation_error` naming the field (`iban`, `bic` or `name`) and changes nothing.
    """
    account = await _change_bank_account(accounts, account_id, caller, body)
    await audit(caller, _BANK_ACCOUNT_SET, target=account_id, details=_audited(body))
    return json_out(account_view(account))


@routes.delete(
    "/v1/accounts/{account_id}/bank_account",
    scope=ACCOUNTS_WRITE,
    summary="Remove an account's bank details",
    status_code=204,
    problems=(401, 403, 404, 422, 503),
)
async def delete_bank_account(
    account_id: str, caller: Caller, audit: Audit, accounts: Accounts
) -> Response:
    """Remove the account's bank details (none already: the same answer, 204)."""
    await _change_bank_account(accounts, account_id, caller, None)
    await audit(caller, _BANK_ACCOUNT_REMOVED, target=account_id)
    return Response(status_code=204)


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
