"""The Accounts gRPC servicer: protobuf <-> domain, per-item results <-> enums."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc

from paymesh.accounts import service
from paymesh.accounts.domain import (
    Account,
    AccountFlags,
    AccountResult,
    Transfer,
    TransferFlags,
    TransferResult,
)
from paymesh.accounts.errors import InvalidBankAccount, InvalidRequest
from paymesh.accounts.ports import Deps
from paymesh.contracts.accounts.v1 import accounts_pb2 as pb
from paymesh.contracts.accounts.v1 import accounts_pb2_grpc as pb_grpc
from paymesh.platform.banking import BankAccount, InvalidBankDetails, bank_account
from paymesh.platform.rpc import require_caller

__all__ = ["SERVICE_NAME", "AccountsServicer", "account_to_pb", "transfer_to_pb"]

SERVICE_NAME = "paymesh.accounts.v1.Accounts"

Context = grpc.aio.ServicerContext[Any, Any]

MAX_LABEL = 64  # code
MAX_REFERENCE = 256
MAX_METADATA_KEYS = 32
MAX_METADATA_VALUE = 512

_ACCOUNT_RESULTS = {
    r: pb.CreateAccountResult.Value(f"CREATE_ACCOUNT_RESULT_{r.name}") for r in AccountResult
}
_TRANSFER_RESULTS = {
    r: pb.CreateTransferResult.Value(f"CREATE_TRANSFER_RESULT_{r.name}") for r in TransferResult
}


def _check_labels(code: str, reference: str = "") -> None:
    if len(code) > MAX_LABEL:
        raise InvalidRequest(f"code is longer than {MAX_LABEL} characters")
    if len(reference) > MAX_REFERENCE:
        raise InvalidRequest(f"reference is longer than {MAX_REFERENCE} characters")


# The fields a message and its domain object share, copied by name both ways.
_ACCOUNT_FLAGS = ("debits_must_not_exceed_credits", "credits_must_not_exceed_debits")
_BALANCES = ("debits_pending", "debits_posted", "credits_pending", "credits_posted")
_ACCOUNT_FIELDS = ("id", "currency", "code", *_BALANCES)
_TRANSFER_FLAGS = ("linked", "pending", "post_pending", "void_pending")
_TRANSFER_FIELDS = (
    "id",
    "debit_account_id",
    "credit_account_id",
    "amount",
    "currency",
    "pending_id",
    "timeout_seconds",
    "code",
    "reference",
)
_BANK_FIELDS = ("iban", "bic", "name")
# What only the ledger sets: read back, never taken from a request.
_STORED = ("tenant_id", "created_at_us")


def _fields(source: object, names: Iterable[str]) -> dict[str, Any]:
    return {name: getattr(source, name) for name in names}


def bank_account_from_pb(m: pb.BankAccount) -> BankAccount:
    """The bank details a request names, validated and normalised."""
    try:
        return bank_account(**_fields(m, _BANK_FIELDS))
    except InvalidBankDetails as exc:
        raise InvalidBankAccount(f"bank_account.{exc}") from None


def _bank_account_of(m: pb.Account | pb.OpenAccountRequest) -> BankAccount | None:
    return bank_account_from_pb(m.bank_account) if m.HasField("bank_account") else None


def account_from_pb(m: pb.Account) -> Account:
    """The domain account a request names (tenant and time are the ledger's)."""
    _check_labels(m.code)
    if len(m.metadata) > MAX_METADATA_KEYS or any(
        len(k) > MAX_LABEL or len(v) > MAX_METADATA_VALUE for k, v in m.metadata.items()
    ):
        raise InvalidRequest("metadata is too large")
    flags = AccountFlags(**_fields(m.flags, _ACCOUNT_FLAGS))
    return Account(
        **_fields(m, _ACCOUNT_FIELDS),
        flags=flags,
        metadata=dict(m.metadata),
        bank_account=_bank_account_of(m),
    )


def account_to_pb(a: Account) -> pb.Account:
    """The protobuf form of `a`."""
    b = a.balance
    bank = a.bank_account
    return pb.Account(
        **_fields(a, (*_ACCOUNT_FIELDS, *_STORED)),
        flags=pb.AccountFlags(**_fields(a.flags, _ACCOUNT_FLAGS)),
        metadata=dict(a.metadata),
        balance=pb.AccountBalance(available=b.available, pending=b.pending, posted=b.posted),
        bank_account=None if bank is None else pb.BankAccount(**_fields(bank, _BANK_FIELDS)),
    )


def transfer_from_pb(m: pb.Transfer) -> Transfer:
    """The domain transfer a request names (its tenant_id is ignored: the caller's wins)."""
    _check_labels(m.code, m.reference)
    flags = TransferFlags(**_fields(m.flags, _TRANSFER_FLAGS))
    return Transfer(**_fields(m, _TRANSFER_FIELDS), flags=flags)


def transfer_to_pb(t: Transfer) -> pb.Transfer:
    """The protobuf form of `t`."""
    flags = pb.TransferFlags(**_fields(t.flags, _TRANSFER_FLAGS))
    return pb.Transfer(**_fields(t, (*_TRANSFER_FIELDS, *_STORED)), flags=flags)


class AccountsServicer(pb_grpc.AccountsServicer):
    """The Accounts service over gRPC; the server turns its errors into statuses."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    async def CreateAccounts(
        self, request: pb.CreateAccountsRequest, context: Context
    ) -> pb.CreateAccountsResponse:
        caller = await require_caller(context)
        batch = [account_from_pb(a) for a in request.accounts]
        outcome = await service.create_accounts(batch, caller=caller, deps=self._deps)
        return pb.CreateAccountsResponse(
            results=[_ACCOUNT_RESULTS[r] for r in outcome.results],
            accounts=[pb.Account() if a is None else account_to_pb(a) for a in outcome.accounts],
        )

    async def OpenAccount(self, request: pb.OpenAccountRequest, context: Context) -> pb.Account:
        caller = await require_caller(context)
        fields = _fields(request, ("id", "currency", "code", "metadata"))
        bank = request.bank_account if request.HasField("bank_account") else None
        account = account_from_pb(pb.Account(**fields, bank_account=bank))
        return account_to_pb(await service.open_account(account, caller=caller, deps=self._deps))

    async def SetBankAccount(
        self, request: pb.SetBankAccountRequest, context: Context
    ) -> pb.Account:
        caller = await require_caller(context)
        bank = bank_account_from_pb(request.bank_account)
        account = await service.set_bank_account(
            request.account_id, bank, caller=caller, deps=self._deps
        )
        return account_to_pb(account)

    async def RemoveBankAccount(
        self, request: pb.RemoveBankAccountRequest, context: Context
    ) -> pb.Account:
        caller = await require_caller(context)
        account = await service.set_bank_account(
            request.account_id, None, caller=caller, deps=self._deps
        )
        return account_to_pb(account)

    async def LookupAccounts(
        self, request: pb.LookupAccountsRequest, context: Context
    ) -> pb.LookupAccountsResponse:
        caller = await require_caller(context)
        found = await service.lookup_accounts(list(request.ids), caller=caller, deps=self._deps)
        return pb.LookupAccountsResponse(accounts=[account_to_pb(a) for a in found])

    async def CreateTransfers(
        self, request: pb.CreateTransfersRequest, context: Context
    ) -> pb.CreateTransfersResponse:
        caller = await require_caller(context)
        batch = [transfer_from_pb(t) for t in request.transfers]
        outcome = await service.create_transfers(batch, caller=caller, deps=self._deps)
        stored = outcome.transfers
        return pb.CreateTransfersResponse(
            results=[_TRANSFER_RESULTS[r] for r in outcome.results],
            transfers=[pb.Transfer() if t is None else transfer_to_pb(t) for t in stored],
        )

    async def LookupTransfers(
        self, request: pb.LookupTransfersRequest, context: Context
    ) -> pb.LookupTransfersResponse:
        caller = await require_caller(context)
        found = await service.lookup_transfers(list(request.ids), caller=caller, deps=self._deps)
        return pb.LookupTransfersResponse(transfers=[transfer_to_pb(t) for t in found])

    async def ListEntries(
        self, request: pb.ListEntriesRequest, context: Context
    ) -> pb.ListEntriesResponse:
        caller = await require_caller(context)
        entries, has_more = await service.list_entries(
            request.account_id,
            request.limit,
            request.starting_after,
            caller=caller,
            deps=self._deps,
        )
        return pb.ListEntriesResponse(
            entries=[
                pb.Entry(transfer=transfer_to_pb(e.transfer), side=e.side, status=e.status)
                for e in entries
            ],
            has_more=has_more,
        )

    async def GetAccountBalances(
        self, request: pb.GetAccountBalancesRequest, context: Context
    ) -> pb.GetAccountBalancesResponse:
        caller = await require_caller(context)
        a = await service.get_account_balances(
            request.account_id, request.as_of_us, caller=caller, deps=self._deps
        )
        return pb.GetAccountBalancesResponse(
            account_id=a.id, currency=a.currency, as_of_us=request.as_of_us, **_fields(a, _BALANCES)
        )

    async def ListAccounts(
        self, request: pb.ListAccountsRequest, context: Context
    ) -> pb.ListAccountsResponse:
        caller = await require_caller(context)
        found, has_more = await service.list_accounts(
            request.limit, request.starting_after, caller=caller, deps=self._deps
        )
        return pb.ListAccountsResponse(
            accounts=[account_to_pb(a) for a in found], has_more=has_more
        )
