"""The refund flow: one single-phase transfer back, payee → payer, reserved atomically.

The state machine is :mod:`paymesh.payments.domain.refunds`. A refund that
succeeds adds its amount to its payment's ``amount_refunded`` in the same
transaction (:attr:`Flow.also`), once.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import sqlalchemy as sa

from paymesh.payments.domain import REFUNDS, Refund, RefundStatus
from paymesh.payments.flows.base import move_or_look_up, movement_flow
from paymesh.payments.flows.payment import payments
from paymesh.payments.messages import refund_events
from paymesh.payments.tables import saga_table

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


def _add_refunded(r: Refund) -> Any:
    """A success adds to the payment's refunded amount (the transition wins once)."""
    if r.status is not RefundStatus.SUCCEEDED:
        return None
    return (
        payments.update()
        .where(payments.c.id == r.payment_id)
        .values(amount_refunded=payments.c.amount_refunded + r.amount)
    )


FLOW = movement_flow(
    "refund",
    Refund,
    refunds,
    REFUNDS,
    step=partial(move_or_look_up, REFUNDS),
    events=refund_events,
    fixed=("payment_id",),
    also=_add_refunded,
)
