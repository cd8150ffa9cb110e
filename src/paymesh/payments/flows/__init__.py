"""The registry of payment flows: one :class:`~paymesh.payments.flows.base.Flow` per kind.

Each flow lives in its own module here (its table, row mapping, steps,
events and ledger ids); the saga and the store look a flow up by its kind
and never name one. Adding a flow: see docs/contributing.md.
"""

from __future__ import annotations

from collections.abc import Mapping

from paymesh.payments.flows import (
    payment,
    payout,
    payout_return,
    refund,
    topup,
    topup_reversal,
    transfer,
)
from paymesh.payments.flows.base import Flow, by_kind
from paymesh.payments.tables import metadata

__all__ = ["FLOWS", "Flow", "flow", "metadata"]

FLOWS: Mapping[str, Flow] = by_kind(
    m.FLOW for m in (payment, refund, topup, payout, transfer, topup_reversal, payout_return)
)


def flow(kind: str) -> Flow:
    """The flow named `kind` (KeyError for an unknown one)."""
    return FLOWS[kind]
