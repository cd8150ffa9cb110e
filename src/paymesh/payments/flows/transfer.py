"""The P2P transfer flow: one single-phase ledger transfer between two of the tenant's accounts.

The state machine is :mod:`paymesh.payments.domain.transfers`.
"""

from __future__ import annotations

from functools import partial

import sqlalchemy as sa

from paymesh.payments.domain import TRANSFERS, P2PTransfer
from paymesh.payments.flows.base import move_or_look_up, movement_flow
from paymesh.payments.messages import transfer_events
from paymesh.payments.tables import saga_table

__all__ = ["FLOW", "transfers"]

transfers = saga_table(
    "transfers",
    sa.Column("from_account_id", sa.Text, nullable=False),
    sa.Column("to_account_id", sa.Text, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
)

FLOW = movement_flow(
    "transfer",
    P2PTransfer,
    transfers,
    TRANSFERS,
    step=partial(move_or_look_up, TRANSFERS),
    events=transfer_events,
)
