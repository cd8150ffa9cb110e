"""Top-ups, payouts and transfers as the API shows them."""

from __future__ import annotations

from paymesh.contracts.events import format_time
from paymesh.contracts.payments.v1 import payments_pb2 as ppb
from paymesh.gateway.features.transfers.schemas import PayoutOut, TopupOut, TransferOut
from paymesh.gateway.views import opt


def topup_view(t: ppb.Topup) -> TopupOut:
    """A top-up."""
    return TopupOut(
        id=t.id,
        account_id=t.account_id,
        amount=t.amount,
        currency=t.currency,
        status=t.status,
        failure_code=opt(t.failure_code),
        created=format_time(t.created_at_us),
    )


def payout_view(p: ppb.Payout) -> PayoutOut:
    """A payout."""
    return PayoutOut(
        id=p.id,
        account_id=p.account_id,
        amount=p.amount,
        currency=p.currency,
        status=p.status,
        failure_code=opt(p.failure_code),
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
        failure_code=opt(t.failure_code),
        created=format_time(t.created_at_us),
    )
