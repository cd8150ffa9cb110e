"""The P2P transfer flow: one single-phase ledger transfer between two of the tenant's accounts.

The state machine is :mod:`paymesh.payments.domain.transfers`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from paymesh.payments import domain
from paymesh.payments.domain import P2PTransfer, P2PTransferStatus, Step
from paymesh.payments.events import transfer_events
from paymesh.payments.flows.base import Flow, Outcome, ledger_results
from paymesh.payments.tables import saga_table
from paymesh.platform.identity import Caller

if TYPE_CHECKING:
    from paymesh.payments.saga import Deps

__all__ = ["FLOW", "transfers"]

transfers = saga_table(
    "transfers",
    sa.Column("from_account_id", sa.Text, nullable=False),
    sa.Column("to_account_id", sa.Text, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
)


async def _step(t: P2PTransfer, caller: Caller, deps: Deps) -> Outcome:
    """Move the money (or, past the transfer's deadline, ask whether it moved)."""
    move = domain.move_transfer(t)
    if t.step is Step.LOOKUP:
        found = await deps.ledger.lookup_transfers(caller, [move.id])
        result = "exists" if found else domain.TIMEOUT
    else:
        [result] = await ledger_results(deps, caller, [move])
    return domain.settle_p2p_transfer(t, result, deps.clock.now_us())


def _give_up(t: P2PTransfer, now_us: int) -> Outcome:
    """A transfer past its deadline is never sent again: the ledger is asked instead."""
    if t.step is not Step.TRANSFER:
        return None
    return domain.find_by_lookup(t, now_us), ()


FLOW = Flow(
    kind="transfer",
    cls=P2PTransfer,
    status=P2PTransferStatus,
    table=transfers,
    step=_step,
    events=transfer_events,
    ledger_ids=lambda transfer_id: (f"{transfer_id}:move",),
    give_up=_give_up,
)
