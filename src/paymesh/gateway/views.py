"""Translate the services' protobuf messages into the REST API's JSON bodies."""

from __future__ import annotations

import json

from paymesh.contracts.accounts.v1 import accounts_pb2 as apb
from paymesh.contracts.events import format_time
from paymesh.contracts.objects import to_json
from paymesh.contracts.payments.v1 import payments_pb2 as ppb
from paymesh.gateway import domain
from paymesh.gateway.schemas import (
    AccountOut,
    BalanceOut,
    EntryOut,
    EventOut,
    FeesOut,
    PaymentOut,
    PayoutOut,
    RefundOut,
    TenantOut,
    TopupOut,
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
    "topup_view",
    "transfer_view",
]

CAPTURE_METHODS = {
    "automatic": ppb.CAPTURE_METHOD_AUTOMATIC,
    "manual": ppb.CAPTURE_METHOD_MANUAL,
}


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
    """A payment: its public form, the one its events carry as data."""
    return PaymentOut.model_validate(to_json(p))


def refund_view(r: ppb.Refund) -> RefundOut:
    """A refund: its public form, the one its events carry as data."""
    return RefundOut.model_validate(to_json(r))


def topup_view(t: ppb.Topup) -> TopupOut:
    """A top-up: its public form, the one its events carry as data."""
    return TopupOut.model_validate(to_json(t))


def payout_view(p: ppb.Payout) -> PayoutOut:
    """A payout: its public form, the one its events carry as data."""
    return PayoutOut.model_validate(to_json(p))


def transfer_view(t: ppb.Transfer) -> TransferOut:
    """A transfer between two accounts: its public form, the one its events carry as data."""
    return TransferOut.model_validate(to_json(t))


def event_view(e: ppb.Event) -> EventOut:
    """An event: its CloudEvents envelope."""
    return EventOut.model_validate(json.loads(e.json))
