"""gRPC adapters of the ports: the accounts ledger and risk, with the caller forwarded.

A failed call becomes :class:`TransientError` when trying again may help
(the server was unreachable, slow, overloaded or crashed mid-call) and
:class:`RemoteRefusal` (with the server's stable error code) otherwise.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from paymesh.contracts.accounts.v1 import accounts_pb2 as apb
from paymesh.contracts.accounts.v1.accounts_pb2_grpc import AccountsStub
from paymesh.contracts.risk.v1 import risk_pb2 as rpb
from paymesh.contracts.risk.v1.risk_pb2_grpc import RiskStub
from paymesh.payments.domain import Payment, RiskAssessment, Transfer, TransferKind
from paymesh.payments.errors import RemoteRefusal, TransientError
from paymesh.payments.messages import message_of
from paymesh.payments.ports import BankAccount, LedgerAccount
from paymesh.platform.identity import Caller
from paymesh.platform.rpc import caller_options, error_code

__all__ = ["GrpcLedgerClient", "GrpcRiskClient", "result_name"]

T = TypeVar("T")

_TRANSIENT = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.CANCELLED,
    }
)

_OUTCOMES = {
    rpb.OUTCOME_APPROVE: "approve",
    rpb.OUTCOME_REVIEW: "review",
    rpb.OUTCOME_DECLINE: "decline",
}


def result_name(enum_name: str, prefix: str) -> str:
    """``CREATE_TRANSFER_RESULT_EXCEEDS_CREDITS`` → ``exceeds_credits``."""
    return enum_name.removeprefix(prefix).lower()


class _Remote:
    """Calls to one service as the caller, each within the deadline; a failed call raised
    as :class:`TransientError` or :class:`RemoteRefusal` (see the module docstring)."""

    def __init__(self, deadline_s: float) -> None:
        self._deadline_s = deadline_s

    async def _call(
        self, method: Callable[..., Awaitable[T]], request: Message, caller: Caller
    ) -> T:
        try:
            return await method(request, **caller_options(caller, self._deadline_s))
        except grpc.aio.AioRpcError as exc:
            status = exc.code()
            message = f"{status.name}: {exc.details()}"
            if status in _TRANSIENT:
                raise TransientError(message) from exc
            raise RemoteRefusal(error_code(exc) or status.name.lower(), message) from exc


class GrpcLedgerClient(_Remote):
    """The ledger port over the accounts service's gRPC API.

    Accounts it has seen are remembered (up to `known_accounts`, the least recently
    used forgotten first): a ledger account is never deleted and its tenant, currency,
    code, flags and metadata never change, so a lookup of known accounts needs no call,
    nor does opening again an account this client opened (or found existing) exactly
    as asked. An account not found is never remembered: it may be opened at any time.
    Its bank details may change, so a remembered account's `bank_account` is as of the
    last lookup: a lookup with ``fresh=True`` always asks (and remembers the answer).
    """

    def __init__(
        self, channel: grpc.aio.Channel, *, deadline_s: float, known_accounts: int = 100_000
    ) -> None:
        super().__init__(deadline_s)
        self._stub = AccountsStub(channel)
        self._known: OrderedDict[tuple[str, str], LedgerAccount] = OrderedDict()
        self._known_max = known_accounts
        # Accounts the ledger answered "ok" or "exists" to opening as they are here (a
        # lookup does not say: it leaves out the metadata and some flags).
        self._opened: OrderedDict[tuple[str, LedgerAccount], None] = OrderedDict()

    def _remember(self, tenant_id: str, accounts: Iterable[LedgerAccount]) -> None:
        for account in accounts:
            self._known[(tenant_id, account.id)] = account
            self._known.move_to_end((tenant_id, account.id))
        while len(self._known) > self._known_max:
            self._known.popitem(last=False)

    def _recall(self, tenant_id: str, ids: Sequence[str]) -> list[LedgerAccount] | None:
        """The accounts `ids`, if every one is known."""
        found = []
        for account_id in ids:
            known = self._known.get((tenant_id, account_id))
            if known is None:
                return None
            found.append(known)
        for account_id in ids:
            self._known.move_to_end((tenant_id, account_id))
        return found

    async def create_accounts(self, caller: Caller, accounts: Sequence[LedgerAccount]) -> list[str]:
        """Open accounts; one result name per account."""
        tenant = caller.tenant_id
        if all((tenant, a) in self._opened for a in accounts):
            return ["exists"] * len(accounts)  # what the ledger answers for these
        request = apb.CreateAccountsRequest(accounts=[_account_pb(caller, a) for a in accounts])
        response = await self._call(self._stub.CreateAccounts, request, caller)
        results = _result_names(
            apb.CreateAccountResult.Name, "CREATE_ACCOUNT_RESULT_", response.results
        )
        opened = [a for a, r in zip(accounts, results, strict=True) if r in ("ok", "exists")]
        self._remember(tenant, opened)
        for account in opened:
            self._opened[(tenant, account)] = None
        while len(self._opened) > self._known_max:
            self._opened.popitem(last=False)
        return results

    async def create_transfers(self, caller: Caller, transfers: Sequence[Transfer]) -> list[str]:
        """Create transfers; one result name per transfer."""
        request = apb.CreateTransfersRequest(transfers=[_transfer_pb(caller, t) for t in transfers])
        response = await self._call(self._stub.CreateTransfers, request, caller)
        return _result_names(
            apb.CreateTransferResult.Name, "CREATE_TRANSFER_RESULT_", response.results
        )

    async def lookup_transfers(self, caller: Caller, ids: Sequence[str]) -> list[Transfer]:
        """The caller's transfers among `ids`."""
        request = apb.LookupTransfersRequest(ids=list(ids))
        response = await self._call(self._stub.LookupTransfers, request, caller)
        return [_transfer(t) for t in response.transfers]

    async def lookup_accounts(
        self, caller: Caller, ids: Sequence[str], *, fresh: bool = False
    ) -> list[LedgerAccount]:
        """The caller's accounts among `ids`, with their bank details (as of now if `fresh`)."""
        known = None if fresh else self._recall(caller.tenant_id, ids)
        if known is not None:
            return known
        request = apb.LookupAccountsRequest(ids=list(ids))
        response = await self._call(self._stub.LookupAccounts, request, caller)
        found = [_account(a) for a in response.accounts]
        self._remember(caller.tenant_id, found)
        return found


def _result_names(name: Callable[[Any], str], prefix: str, results: Iterable[int]) -> list[str]:
    """The result name of each of `results`, an enum of names ``<prefix><RESULT>``."""
    return [result_name(name(r), prefix) for r in results]


_BANK_FIELDS = tuple(f.name for f in dataclasses.fields(BankAccount))


def _account_pb(caller: Caller, a: LedgerAccount) -> apb.Account:
    bank = a.bank_account
    return apb.Account(
        id=a.id,
        tenant_id=caller.tenant_id,
        currency=a.currency,
        code=a.code,
        flags=apb.AccountFlags(debits_must_not_exceed_credits=a.no_overdraft),
        bank_account=None if bank is None else apb.BankAccount(**dataclasses.asdict(bank)),
    )


def _account(a: apb.Account) -> LedgerAccount:
    no_overdraft = a.flags.debits_must_not_exceed_credits
    bank = (
        BankAccount(**{name: getattr(a.bank_account, name) for name in _BANK_FIELDS})
        if a.HasField("bank_account")
        else None
    )
    return LedgerAccount(
        id=a.id, currency=a.currency, code=a.code, no_overdraft=no_overdraft, bank_account=bank
    )


# The kinds of transfer the ledger marks with a flag of the kind's name.
_FLAGGED_KINDS = (TransferKind.PENDING, TransferKind.POST_PENDING, TransferKind.VOID_PENDING)
# The fields a transfer and its message share by name.
_TRANSFER_FIELDS = tuple(
    f.name for f in dataclasses.fields(Transfer) if f.name not in ("kind", "linked")
)


def _transfer_pb(caller: Caller, t: Transfer) -> apb.Transfer:
    flags = apb.TransferFlags(
        linked=t.linked, **{kind.value: t.kind is kind for kind in _FLAGGED_KINDS}
    )
    fields = {name: getattr(t, name) for name in _TRANSFER_FIELDS}
    return apb.Transfer(**fields, flags=flags, tenant_id=caller.tenant_id)


def _transfer(t: apb.Transfer) -> Transfer:
    flagged = (kind for kind in _FLAGGED_KINDS if getattr(t.flags, kind.value))
    fields = {name: getattr(t, name) for name in _TRANSFER_FIELDS}
    return Transfer(**fields, kind=next(flagged, TransferKind.SINGLE), linked=t.flags.linked)


class GrpcRiskClient(_Remote):
    """The risk port over the risk service's gRPC API."""

    def __init__(self, channel: grpc.aio.Channel, *, deadline_s: float) -> None:
        super().__init__(deadline_s)
        self._stub = RiskStub(channel)

    async def decide(self, caller: Caller, payment: Payment) -> RiskAssessment:
        """Risk's decision on `payment` (the same one if asked again)."""
        context = message_of(rpb.PaymentContext, payment.context)
        request = message_of(rpb.DecideRequest, payment, payment_id=payment.id, context=context)
        decision = await self._call(self._stub.Decide, request, caller)
        return RiskAssessment(
            # An outcome this version does not know asks for a human.
            decision=_OUTCOMES.get(decision.outcome, "review"),
            score=decision.score,
            reasons=tuple(r.code for r in decision.reasons),
            rules_version=decision.rules_version,
        )
