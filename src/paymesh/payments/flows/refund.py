"""The refund flow: one single-phase transfer back, payee → payer, reserved atomically.

The state machine is :mod:`paymesh.payments.domain.refunds`. A refund that
succeeds adds its amount to its payment's ``amount_refunded`` in the same
transaction (:attr:`Flow.also`), once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from paymesh.payments import domain
from paymesh.payments.domain import Refund, RefundStatus, Step
from paymesh.payments.events import refund_events
from paymesh.payments.flows.base import Flow, Outcome, ledger_results
from paymesh.payments.flows.payment import payments
from paymesh.payments.tables import saga_table
from paymesh.platform.identity import Caller

if TYPE_CHECKING:
    from paymesh.payments.saga import Deps

__all__ = ["FLOW", "refunds"]

refunds = saga_table(
    "refunds",
    sa.Column("payment_id", sa.String(64), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("requested_amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("payer_account_id", sa.Text, nullable=False),
    sa.Column("payee_account_id", sa.Text, nullable=False),
    sa.Index("ix_refunds_payment", "payment_id"),
)


async def _step(r: Refund, caller: Caller, deps: Deps) -> Outcome:
    """Move the money back (or, past the transfer's deadline, ask whether it moved)."""
    transfer = domain.refund_transfer(r)
    if r.step is Step.LOOKUP:
        found = await deps.ledger.lookup_transfers(caller, [transfer.id])
        result = "exists" if found else domain.TIMEOUT
    else:
        [result] = await ledger_results(deps, caller, [transfer])
    return domain.settle_refund(r, result, deps.clock.now_us())


def _give_up(r: Refund, now_us: int) -> Outcome:
    """A transfer past its deadline is never sent again: the ledger is asked instead."""
    if r.step is not Step.TRANSFER:
        return None
    return domain.find_by_lookup(r, now_us), ()


def _add_refunded(r: Refund) -> Any:
    """A success adds to the payment's refunded amount (the transition wins once)."""
    if r.status is not RefundStatus.SUCCEEDED:
        return None
    return (
        payments.update()
        .where(payments.c.id == r.payment_id)
        .values(amount_refunded=payments.c.amount_refunded + r.amount)
    )


FLOW = Flow(
    kind="refund",
    cls=Refund,
    status=RefundStatus,
    table=refunds,
    step=_step,
    events=refund_events,
    ledger_ids=lambda refund_id: (refund_id,),
    give_up=_give_up,
    fixed=("payment_id",),
    also=_add_refunded,
)
