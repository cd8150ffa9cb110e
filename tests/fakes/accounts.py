"""The accounts service in memory, called like its generated stub."""

from __future__ import annotations

import grpc

from paymesh.contracts.accounts.v1 import accounts_pb2 as apb
from paymesh.platform.banking import InvalidBankDetails, bank_account
from paymesh.platform.identity import Caller
from tests.fakes import rpc, rpc_error

__all__ = ["FakeAccounts"]


def _not_found(what: str) -> grpc.aio.AioRpcError:
    return rpc_error(grpc.StatusCode.NOT_FOUND, "not_found", f"no {what}")


def _bank_account(m: apb.BankAccount) -> apb.BankAccount:
    """The details validated and normalised as the service does (INVALID_ARGUMENT)."""
    try:
        b = bank_account(m.iban, m.bic, m.name)
    except InvalidBankDetails as exc:
        raise rpc_error(
            grpc.StatusCode.INVALID_ARGUMENT, "invalid_bank_account", f"bank_account.{exc}"
        ) from None
    return apb.BankAccount(iban=b.iban, bic=b.bic, name=b.name)


def _answer(account: apb.Account) -> apb.Account:
    """The account as the service answers it: with the balance it reads from the four sides
    (tests set those sides on the stored accounts)."""
    out = apb.Account()
    out.CopyFrom(account)
    posted = account.credits_posted - account.debits_posted
    out.balance.CopyFrom(
        apb.AccountBalance(
            available=posted - account.debits_pending,
            pending=account.credits_pending - account.debits_pending,
            posted=posted,
        )
    )
    return out


class FakeAccounts:
    """The accounts service in memory, refusing other tenants' objects like the real one."""

    def __init__(self) -> None:
        self.accounts: dict[str, apb.Account] = {}
        self.entries: dict[str, list[apb.Entry]] = {}

    @rpc
    async def OpenAccount(self, request: apb.OpenAccountRequest, *, caller: Caller) -> apb.Account:
        existing = self.accounts.get(request.id)
        if existing is not None:
            if existing.tenant_id != caller.tenant_id:
                code = "exists_for_other_tenant"
                raise rpc_error(
                    grpc.StatusCode.FAILED_PRECONDITION, code, f"account refused: {code}"
                )
            return _answer(existing)
        bank = _bank_account(request.bank_account) if request.HasField("bank_account") else None
        self.accounts[request.id] = apb.Account(
            id=request.id,
            tenant_id=caller.tenant_id,
            currency=request.currency,
            flags=apb.AccountFlags(debits_must_not_exceed_credits=True),
            metadata=dict(request.metadata),
            code=request.code,
            created_at_us=1_700_000_000_000_000,
            bank_account=bank,
        )
        return _answer(self.accounts[request.id])

    def _mine(self, account_id: str, caller: Caller) -> apb.Account:
        account = self.accounts.get(account_id)
        if account is None or account.tenant_id != caller.tenant_id:
            raise rpc_error(grpc.StatusCode.NOT_FOUND, "account_not_found", "no such account")
        return account

    @rpc
    async def SetBankAccount(
        self, request: apb.SetBankAccountRequest, *, caller: Caller
    ) -> apb.Account:
        bank = _bank_account(request.bank_account)  # validated first, as the service does
        account = self._mine(request.account_id, caller)
        account.bank_account.CopyFrom(bank)
        return _answer(account)

    @rpc
    async def RemoveBankAccount(
        self, request: apb.RemoveBankAccountRequest, *, caller: Caller
    ) -> apb.Account:
        account = self._mine(request.account_id, caller)
        account.ClearField("bank_account")
        return _answer(account)

    @rpc
    async def LookupAccounts(
        self, request: apb.LookupAccountsRequest, *, caller: Caller
    ) -> apb.LookupAccountsResponse:
        found = [
            _answer(a)
            for i in request.ids
            if (a := self.accounts.get(i)) is not None and a.tenant_id == caller.tenant_id
        ]
        return apb.LookupAccountsResponse(accounts=found)

    @rpc
    async def ListAccounts(
        self, request: apb.ListAccountsRequest, *, caller: Caller
    ) -> apb.ListAccountsResponse:
        limit = request.limit or 20
        mine = sorted(
            (a for a in self.accounts.values() if a.tenant_id == caller.tenant_id),
            key=lambda a: a.id,
        )
        after = [a for a in mine if a.id > request.starting_after]
        return apb.ListAccountsResponse(
            accounts=[_answer(a) for a in after[:limit]], has_more=len(after) > limit
        )

    @rpc
    async def ListEntries(
        self, request: apb.ListEntriesRequest, *, caller: Caller
    ) -> apb.ListEntriesResponse:
        account = self.accounts.get(request.account_id)
        if account is None or account.tenant_id != caller.tenant_id:
            raise _not_found("account")
        entries = self.entries.get(request.account_id, [])
        return apb.ListEntriesResponse(
            entries=entries[: request.limit], has_more=len(entries) > request.limit
        )
