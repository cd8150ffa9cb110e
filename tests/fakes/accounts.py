"""The accounts service in memory, called like its generated stub."""

from __future__ import annotations

import grpc

from paymesh.contracts.accounts.v1 import accounts_pb2 as apb
from paymesh.platform.identity import Caller
from tests.fakes import rpc, rpc_error

__all__ = ["FakeAccounts"]


def _not_found(what: str) -> grpc.aio.AioRpcError:
    return rpc_error(grpc.StatusCode.NOT_FOUND, "not_found", f"no {what}")


class FakeAccounts:
    """The accounts service in memory, refusing other tenants' objects like the real one."""

    def __init__(self) -> None:
        self.accounts: dict[str, apb.Account] = {}
        self.entries: dict[str, list[apb.Entry]] = {}

    @rpc
    async def CreateAccounts(
        self, request: apb.CreateAccountsRequest, *, caller: Caller
    ) -> apb.CreateAccountsResponse:
        out = apb.CreateAccountsResponse()
        for account in request.accounts:
            existing = self.accounts.get(account.id)
            if existing is not None:
                out.results.append(apb.CREATE_ACCOUNT_RESULT_EXISTS)
                out.accounts.append(existing)
                continue
            stored = apb.Account()
            stored.CopyFrom(account)
            stored.tenant_id = caller.tenant_id
            stored.created_at_us = 1_700_000_000_000_000
            self.accounts[account.id] = stored
            out.results.append(apb.CREATE_ACCOUNT_RESULT_OK)
            out.accounts.append(stored)
        return out

    @rpc
    async def LookupAccounts(
        self, request: apb.LookupAccountsRequest, *, caller: Caller
    ) -> apb.LookupAccountsResponse:
        found = [
            a
            for i in request.ids
            if (a := self.accounts.get(i)) is not None and a.tenant_id == caller.tenant_id
        ]
        return apb.LookupAccountsResponse(accounts=found)

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
