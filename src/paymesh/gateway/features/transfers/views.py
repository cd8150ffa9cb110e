"""Top-ups, payouts and transfers as the API shows them."""

from __future__ import annotations

from paymesh.contracts.objects import to_json
from paymesh.contracts.payments.v1 import payments_pb2 as ppb
from paymesh.gateway.features.transfers.schemas import (
    PayoutOut,
    TopupOut,
    TopupReversalOut,
    TransferOut,
)


def topup_view(t: ppb.Topup) -> TopupOut:
    """A top-up: its public form, the one its events carry as data."""
    return TopupOut.model_validate(to_json(t))


def payout_view(p: ppb.Payout) -> PayoutOut:
    """A payout: its public form, the one its events carry as data."""
    return PayoutOut.model_validate(to_json(p))


def transfer_view(t: ppb.Transfer) -> TransferOut:
    """A transfer between two accounts: its public form, the one its events carry as data."""
    return TransferOut.model_validate(to_json(t))


def topup_reversal_view(r: ppb.TopupReversal) -> TopupReversalOut:
    """A top-up's reversal: its public form, the one its events carry as data."""
    return TopupReversalOut.model_validate(to_json(r))
