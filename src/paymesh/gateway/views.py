"""Translate the services' protobuf messages into the REST API's JSON bodies."""

from __future__ import annotations

import json

from paymesh.contracts.accounts.v1 import accounts_pb2 as apb
from paymesh.contracts.events import format_time
from paymesh.contracts.payments.v1 import payments_pb2 as ppb
from paymesh.gateway import domain
from paymesh.gateway.schemas import (
    AccountOut,
    BalanceOut,
    EntryOut,
    EventOut,
    FeesOut,
    PaymentContextOut,
    PaymentOut,
    PayoutOut,
    RefundOut,
    RiskOut,
    TenantOut,
    TopupOut,
    TopupReversalOut,
    TransferOut,
)
from paymesh.gateway.store import Tenant

__all__ = [
    "CAPTURE_METHODS",
    "account_view",
    "entry_view",
    "event_view",
    "payment_view",
    "payout_view",
    "refund_view",
    "tenant_view",
    "topup_reversal_view",
    "topup_view",
    "transfer_view",
]

CAPTURE_METHODS = {
    "automatic": ppb.CAPTURE_METHOD_AUTOMATIC,
    "manual": ppb.CAPTURE_METHOD_MANUAL,
}
_CAPTURE_NAMES = {v: k for k, v in CAPTURE_METHODS.items()}


def _opt(text: str) -> str | None:
    return text or None


def tenant_view(tenant: Tenant) -> TenantOut:
    """A tenant as the API shows it."""
    return TenantOut(
        id=tenant.id,
        name=tenant.name,
        fees=FeesOut(fixed=tenant.fee_fixed, basis_points=tenant.fee_basis_points),
        created=format_time(tenant.created_at_us),
    )


def account_view(account: apb.Account) -> AccountOut:
    """An account with its balance."""
    b = domain.balance(
        debits_pending=account.debits_pending,
        debits_posted=account.debits_posted,
        credits_pending=account.credits_pending,
        credits_posted=account.credits_posted,
    )
    return AccountOut(
        id=account.id,
        type=account.code,
        currency=account.currency,
        balance=BalanceOut(available=b.available, pending=b.pending, posted=b.posted),
        metadata=dict(account.metadata),
        created=format_time(account.created_at_us),
    )


def entry_view(entry: apb.Entry) -> EntryOut:
    """A ledger entry from the account's side."""
    t = entry.transfer
    return EntryOut(
        id=t.id,
        amount=domain.entry_amount(entry.side, t.amount),
        currency=t.currency,
        type=t.code,
        # The ledger says how a hold ended; an accounts service older than that field
        # leaves it empty, and then the flags give what the transfer itself did.
        status=entry.status
        or domain.entry_status(
            pending=t.flags.pending,
            post_pending=t.flags.post_pending,
            void_pending=t.flags.void_pending,
        ),
        reference=t.reference,
        created=format_time(t.created_at_us),
    )


def payment_view(p: ppb.Payment) -> PaymentOut:
    """A payment."""
    ctx = p.context if p.HasField("context") else None
    risk = p.risk if p.HasField("risk") else None
    return PaymentOut(
        id=p.id,
        status=p.status,
        amount=p.amount,
        currency=p.currency,
        amount_captured=p.amount_captured,
        amount_refunded=p.amount_refunded,
        fee=p.fee,
        capture_method=_CAPTURE_NAMES.get(p.capture_method, "automatic"),
        payer_account_id=p.payer_account_id,
        payee_account_id=p.payee_account_id,
        description=_opt(p.description),
        metadata=dict(p.metadata),
        context=(
            PaymentContextOut(
                ip=_opt(ctx.ip), device_id=_opt(ctx.device_id), country=_opt(ctx.country)
            )
            if ctx is not None
            else None
        ),
        risk=(
            RiskOut(
                decision=_opt(risk.decision),
                score=risk.score if risk.decision else None,
                reasons=list(risk.reasons),
            )
            if risk is not None
            else None
        ),
        failure_code=_opt(p.failure_code),
        created=format_time(p.created_at_us),
    )


def refund_view(r: ppb.Refund) -> RefundOut:
    """A refund."""
    return RefundOut(
        id=r.id,
        payment_id=r.payment_id,
        amount=r.amount,
        currency=r.currency,
        status=r.status,
        reason=_opt(r.reason),
        failure_code=_opt(r.failure_code),
        created=format_time(r.created_at_us),
    )


def topup_view(t: ppb.Topup) -> TopupOut:
    """A top-up."""
    return TopupOut(
        id=t.id,
        account_id=t.account_id,
        amount=t.amount,
        currency=t.currency,
        status=t.status,
        failure_code=_opt(t.failure_code),
        created=format_time(t.created_at_us),
    )


def topup_reversal_view(r: ppb.TopupReversal) -> TopupReversalOut:
    """A top-up's reversal."""
    return TopupReversalOut(
        id=r.id,
        topup_id=r.topup_id,
        account_id=r.account_id,
        amount=r.amount,
        currency=r.currency,
        status=r.status,
        failure_code=_opt(r.failure_code),
        created=format_time(r.created_at_us),
    )


def payout_view(p: ppb.Payout) -> PayoutOut:
    """A payout."""
    return PayoutOut(
        id=p.id,
        account_id=p.account_id,
        amount=p.amount,
        currency=p.currency,
        status=p.status,
        failure_code=_opt(p.failure_code),
        created=format_time(p.created_at_us),
    )


def transfer_view(t: ppb.Transfer) -> TransferOut:
    """A transfer between two accounts."""
    return TransferOut(
        id=t.id,
        from_account_id=t.from_account_id,
        to_account_id=t.to_account_id,
        amount=t.amount,
        currency=t.currency,
        status=t.status,
        failure_code=_opt(t.failure_code),
        created=format_time(t.created_at_us),
    )


def event_view(e: ppb.Event) -> EventOut:
    """An event: its CloudEvents envelope."""
    return EventOut.model_validate(json.loads(e.json))
