"""gRPC adapters of the ports: the accounts ledger and risk, with the caller forwarded.

A failed call becomes :class:`TransientError` when trying again may help
(the server was unreachable, slow, overloaded or crashed mid-call) and
:class:`RemoteRefusal` (with the server's stable error code) otherwise.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import grpc

from paymesh.contracts.accounts.v1 import accounts_pb2 as apb
from paymesh.contracts.accounts.v1.accounts_pb2_grpc import AccountsStub
from paymesh.contracts.risk.v1 import risk_pb2 as rpb
from paymesh.contracts.risk.v1.risk_pb2_grpc import RiskStub
from paymesh.payments.domain import Payment, RiskAssessment, Transfer, TransferKind
from paymesh.payments.errors import RemoteRefusal, TransientError
from paymesh.payments.ports import LedgerAccount
from paymesh.platform.identity import Caller
from paymesh.platform.rpc import CallOptions, caller_options, error_code

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


def _options(caller: Caller, deadline_s: float) -> CallOptions:
    return caller_options(caller, deadline_s)


async def _call(call: Callable[[], Awaitable[T]]) -> T:
    try:
        return await call()
    except grpc.aio.AioRpcError as exc:
        status = exc.code()
        message = f"{status.name}: {exc.details()}"
        if status in _TRANSIENT:
            raise TransientError(message) from exc
        raise RemoteRefusal(error_code(exc) or status.name.lower(), message) from exc


class GrpcLedgerClient:
    """The ledger port over the accounts service's gRPC API."""

    def __init__(self, channel: grpc.aio.Channel, *, deadline_s: float) -> None:
        self._stub = AccountsStub(channel)
        self._deadline_s = deadline_s

    async def create_accounts(self, caller: Caller, accounts: Sequence[LedgerAccount]) -> list[str]:
        """Open accounts; one result name per account."""
        request = apb.CreateAccountsRequest(
            accounts=[
                apb.Account(
                    id=a.id,
                    tenant_id=caller.tenant_id,
                    currency=a.currency,
                    code=a.code,
                    flags=apb.AccountFlags(debits_must_not_exceed_credits=a.no_overdraft),
                )
                for a in accounts
            ]
        )
        response = await _call(
            lambda: self._stub.CreateAccounts(request, **_options(caller, self._deadline_s))
        )
        return [
            result_name(apb.CreateAccountResult.Name(r), "CREATE_ACCOUNT_RESULT_")
            for r in response.results
        ]

    async def create_transfers(self, caller: Caller, transfers: Sequence[Transfer]) -> list[str]:
        """Create transfers; one result name per transfer."""
        request = apb.CreateTransfersRequest(transfers=[_transfer_pb(caller, t) for t in transfers])
        response = await _call(
            lambda: self._stub.CreateTransfers(request, **_options(caller, self._deadline_s))
        )
        return [
            result_name(apb.CreateTransferResult.Name(r), "CREATE_TRANSFER_RESULT_")
            for r in response.results
        ]

    async def lookup_transfers(self, caller: Caller, ids: Sequence[str]) -> list[Transfer]:
        """The caller's transfers among `ids`."""
        response = await _call(
            lambda: self._stub.LookupTransfers(
                apb.LookupTransfersRequest(ids=list(ids)),
                **_options(caller, self._deadline_s),
            )
        )
        return [_transfer(t) for t in response.transfers]

    async def lookup_accounts(self, caller: Caller, ids: Sequence[str]) -> list[LedgerAccount]:
        """The caller's accounts among `ids`."""
        response = await _call(
            lambda: self._stub.LookupAccounts(
                apb.LookupAccountsRequest(ids=list(ids)),
                **_options(caller, self._deadline_s),
            )
        )
        return [
            LedgerAccount(
                id=a.id,
                currency=a.currency,
                code=a.code,
                no_overdraft=a.flags.debits_must_not_exceed_credits,
            )
            for a in response.accounts
        ]


def _transfer_pb(caller: Caller, t: Transfer) -> apb.Transfer:
    return apb.Transfer(
        id=t.id,
        debit_account_id=t.debit_account_id,
        credit_account_id=t.credit_account_id,
        amount=t.amount,
        currency=t.currency,
        flags=apb.TransferFlags(
            linked=t.linked,
            pending=t.kind is TransferKind.PENDING,
            post_pending=t.kind is TransferKind.POST_PENDING,
            void_pending=t.kind is TransferKind.VOID_PENDING,
        ),
        pending_id=t.pending_id,
        timeout_seconds=t.timeout_seconds,
        tenant_id=caller.tenant_id,
        code=t.code,
        reference=t.reference,
    )


def _transfer(t: apb.Transfer) -> Transfer:
    kind = TransferKind.SINGLE
    if t.flags.pending:
        kind = TransferKind.PENDING
    elif t.flags.post_pending:
        kind = TransferKind.POST_PENDING
    elif t.flags.void_pending:
        kind = TransferKind.VOID_PENDING
    return Transfer(
        id=t.id,
        debit_account_id=t.debit_account_id,
        credit_account_id=t.credit_account_id,
        amount=t.amount,
        currency=t.currency,
        code=t.code,
        reference=t.reference,
        kind=kind,
        pending_id=t.pending_id,
        linked=t.flags.linked,
        timeout_seconds=t.timeout_seconds,
    )


class GrpcRiskClient:
    """The risk port over the risk service's gRPC API."""

    def __init__(self, channel: grpc.aio.Channel, *, deadline_s: float) -> None:
        self._stub = RiskStub(channel)
        self._deadline_s = deadline_s

    async def decide(self, caller: Caller, payment: Payment) -> RiskAssessment:
        """Risk's decision on `payment` (the same one if asked again)."""
        p = payment
        request = rpb.DecideRequest(
            payment_id=p.id,
            tenant_id=p.tenant_id,
            payer_account_id=p.payer_account_id,
            payee_account_id=p.payee_account_id,
            amount=p.amount,
            currency=p.currency,
            context=rpb.PaymentContext(
                ip=p.context.ip, device_id=p.context.device_id, country=p.context.country
            ),
        )
        decision = await _call(
            lambda: self._stub.Decide(request, **_options(caller, self._deadline_s))
        )
        return RiskAssessment(
            # An outcome this version does not know asks for a human.
            decision=_OUTCOMES.get(decision.outcome, "review"),
            score=decision.score,
            reasons=tuple(r.code for r in decision.reasons),
            rules_version=decision.rules_version,
        )
