"""The payout flow: hold the money, have the bank send it, then post (or void) the hold.

The state machine is :mod:`paymesh.payments.domain.payouts`; its step is
:func:`~paymesh.payments.flows.base.hold_push_post`.
"""

from __future__ import annotations

from functools import partial

import sqlalchemy as sa

from paymesh.payments.domain import PAYOUTS, Payout
from paymesh.payments.flows.base import hold_push_post, movement_flow
from paymesh.payments.messages import payout_events
from paymesh.payments.tables import saga_table

__all__ = ["FLOW", "payouts"]

payouts = saga_table(
    "payouts",
    sa.Column("account_id", sa.Text, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
)

FLOW = movement_flow(
    "payout", Payout, payouts, PAYOUTS, step=partial(hold_push_post, PAYOUTS), events=payout_events
)
