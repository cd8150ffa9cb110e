"""The Accounts gRPC servicer: protobuf <-> domain, per-item results <-> enums."""

from __future__ import annotations

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
from paymesh.accounts.errors import AccountNotFound, AccountRefused, InvalidRequest
from paymesh.accounts.store import AccountsStore
from paymesh.contracts.accounts.v1 import accounts_pb2 as pb
from paymesh.contracts.accounts.v1 import accounts_pb2_grpc as pb_grpc
from paymesh.platform.clock import Clock
from paymesh.platform.rpc import abort, require_caller

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


def account_from_pb(m: pb.Account) -> Account:
    """The domain account a request names (tenant and time are the ledger's)."""
    _check_labels(m.code)
    if len(m.metadata) > MAX_METADATA_KEYS or any(
        len(k) > MAX_LABEL or len(v) > MAX_METADATA_VALUE for k, v in m.metadata.items()
    ):
        raise InvalidRequest("metadata is too large")
    return Account(
        id=m.id,
        currency=m.currency,
        flags=AccountFlags(
            debits_must_not_exceed_credits=m.flags.debits_must_not_exceed_credits,
            credits_must_not_exceed_debits=m.flags.credits_must_not_exceed_debits,
        ),
        debits_pending=m.debits_pending,
        debits_posted=m.debits_posted,
        credits_pending=m.credits_pending,
        credits_posted=m.credits_posted,
        code=m.code,
        metadata=dict(m.metadata),
    )


def account_to_pb(a: Account) -> pb.Account:
    """The protobuf form of `a`."""
    return pb.Account(
        id=a.id,
        tenant_id=a.tenant_id,
        currency=a.currency,
        flags=pb.AccountFlags(
            debits_must_not_exceed_credits=a.flags.debits_must_not_exceed_credits,
            credits_must_not_exceed_debits=a.flags.credits_must_not_exceed_debits,
        ),
        debits_pending=a.debits_pending,
        debits_posted=a.debits_posted,
        credits_pending=a.credits_pending,
        credits_posted=a.credits_posted,
        metadata=dict(a.metadata),
        code=a.code,
        created_at_us=a.created_at_us,
        balance=pb.AccountBalance(
            available=a.balance.available, pending=a.balance.pending, posted=a.balance.posted
        ),
    )


def transfer_from_pb(m: pb.Transfer) -> Transfer:
    """The domain transfer a request names (its tenant_id is ignored: the caller's wins)."""
    _check_labels(m.code, m.reference)
    return Transfer(
        id=m.id,
        debit_account_id=m.debit_account_id,
        credit_account_id=m.credit_account_id,
        amount=m.amount,
        currency=m.currency,
        flags=TransferFlags(
            linked=m.flags.linked,
            pending=m.flags.pending,
            post_pending=m.flags.post_pending,
            void_pending=m.flags.void_pending,
        ),
        pending_id=m.pending_id,
        timeout_seconds=m.timeout_seconds,
        code=m.code,
        reference=m.reference,
    )


def transfer_to_pb(t: Transfer) -> pb.Transfer:
    """The protobuf form of `t`."""
    return pb.Transfer(
        id=t.id,
        debit_account_id=t.debit_account_id,
        credit_account_id=t.credit_account_id,
        amount=t.amount,
        currency=t.currency,
        flags=pb.TransferFlags(
            linked=t.flags.linked,
            pending=t.flags.pending,
            post_pending=t.flags.post_pending,
            void_pending=t.flags.void_pending,
        ),
        pending_id=t.pending_id,
        timeout_seconds=t.timeout_seconds,
        tenant_id=t.tenant_id,
        code=t.code,
        reference=t.reference,
        created_at_us=t.created_at_us,
    )


class AccountsServicer(pb_grpc.AccountsServicer):
    """The Accounts service over gRPC."""

    def __init__(self, store: AccountsStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def CreateAccounts(
        self, request: pb.CreateAccountsRequest, context: Context
    ) -> pb.CreateAccountsResponse:
        caller = await require_caller(context)
        try:
            batch = [account_from_pb(a) for a in request.accounts]
            outcome = await service.create_accounts(
                batch, caller=caller, store=self._store, clock=self._clock
            )
        except InvalidRequest as exc:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, exc.code, str(exc))
        return pb.CreateAccountsResponse(
            results=[_ACCOUNT_RESULTS[r] for r in outcome.results],
            accounts=[pb.Account() if a is None else account_to_pb(a) for a in outcome.accounts],
        )

    async def OpenAccount(self, request: pb.OpenAccountRequest, context: Context) -> pb.Account:
        caller = await require_caller(context)
        try:
            account = account_from_pb(
                pb.Account(
                    id=request.id,
                    currency=request.currency,
                    code=request.code,
                    metadata=request.metadata,
                )
            )
            opened = await service.open_account(
                account, caller=caller, store=self._store, clock=self._clock
            )
        except InvalidRequest as exc:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, exc.code, str(exc))
        except AccountRefused as exc:
            status = (
                grpc.StatusCode.INVALID_ARGUMENT
                if exc.invalid
                else grpc.StatusCode.FAILED_PRECONDITION
            )
            await abort(context, status, exc.code, str(exc))
        return account_to_pb(opened)

    async def LookupAccounts(
        self, request: pb.LookupAccountsRequest, context: Context
    ) -> pb.LookupAccountsResponse:
        caller = await require_caller(context)
        try:
            found = await service.lookup_accounts(
                list(request.ids), caller=caller, store=self._store
            )
        except InvalidRequest as exc:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, exc.code, str(exc))
        return pb.LookupAccountsResponse(accounts=[account_to_pb(a) for a in found])

    async def CreateTransfers(
        self, request: pb.CreateTransfersRequest, context: Context
    ) -> pb.CreateTransfersResponse:
        caller = await require_caller(context)
        try:
            batch = [transfer_from_pb(t) for t in request.transfers]
            outcome = await service.create_transfers(
                batch, caller=caller, store=self._store, clock=self._clock
            )
        except InvalidRequest as exc:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, exc.code, str(exc))
        return pb.CreateTransfersResponse(
            results=[_TRANSFER_RESULTS[r] for r in outcome.results],
            transfers=[
                pb.Transfer() if t is None else transfer_to_pb(t) for t in outcome.transfers
            ],
        )

    async def LookupTransfers(
        self, request: pb.LookupTransfersRequest, context: Context
    ) -> pb.LookupTransfersResponse:
        caller = await require_caller(context)
        try:
            found = await service.lookup_transfers(
                list(request.ids), caller=caller, store=self._store
            )
        except InvalidRequest as exc:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, exc.code, str(exc))
        return pb.LookupTransfersResponse(transfers=[transfer_to_pb(t) for t in found])

    async def ListEntries(
        self, request: pb.ListEntriesRequest, context: Context
    ) -> pb.ListEntriesResponse:
        caller = await require_caller(context)
        try:
            entries, has_more = await service.list_entries(
                request.account_id,
                request.limit,
                request.starting_after,
                caller=caller,
                store=self._store,
            )
        except InvalidRequest as exc:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, exc.code, str(exc))
        except AccountNotFound as exc:
            await abort(context, grpc.StatusCode.NOT_FOUND, exc.code, "no such account")
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
        try:
            a = await service.get_account_balances(
                request.account_id, request.as_of_us, caller=caller, store=self._store
            )
        except InvalidRequest as exc:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, exc.code, str(exc))
        except AccountNotFound as exc:
            await abort(context, grpc.StatusCode.NOT_FOUND, exc.code, "no such account")
        return pb.GetAccountBalancesResponse(
            account_id=a.id,
            currency=a.currency,
            debits_pending=a.debits_pending,
            debits_posted=a.debits_posted,
            credits_pending=a.credits_pending,
            credits_posted=a.credits_posted,
            as_of_us=request.as_of_us,
        )

    async def ListAccounts(
        self, request: pb.ListAccountsRequest, context: Context
    ) -> pb.ListAccountsResponse:
        caller = await require_caller(context)
        try:
            found, has_more = await service.list_accounts(
                request.limit, request.starting_after, caller=caller, store=self._store
            )
        except InvalidRequest as exc:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, exc.code, str(exc))
        return pb.ListAccountsResponse(
            accounts=[account_to_pb(a) for a in found], has_more=has_more
        )
