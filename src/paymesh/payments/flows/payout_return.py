"""The payout-return flow: a payout the bank returned, its money back to the account it left.

A bank statement's return line (a credit with an ISO 20022 return reason,
naming the payout's ``EndToEndId``; :mod:`paymesh.payments.settlement`) starts
it: ``transfer`` (funding → the payout's account, ``{payout_id}:return``) →
``succeeded``. The money came back to the platform's bank account, so the
funding account gives it back to the merchant's account, where the next
payout can pay it again.

A payout is returned at most once: the return's id is the payout's, so a
second return line for it (the same statement imported twice, or another)
answers the same return and moves nothing. Only a succeeded payout is returned.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from paymesh.contracts.events import PAYOUT_RETURN_FAILED, PAYOUT_RETURNED, Event
from paymesh.contracts.payments.v1 import payments_pb2 as pb
from paymesh.payments.domain import (
    AccountMovement,
    Leg,
    Movement,
    MovementStatus,
    MoveMoney,
    Payout,
    Step,
    from_funding,
    new_saga_object,
)
from paymesh.payments.errors import InvalidState
from paymesh.payments.flows.base import Outcome, funding_transfer_result, movement_flow
from paymesh.payments.messages import object_events
from paymesh.payments.tables import saga_table
from paymesh.platform.identity import Caller

if TYPE_CHECKING:
    from paymesh.payments.saga import Deps

__all__ = ["FLOW", "KIND", "RETURNS", "PayoutReturn", "new_return", "payout_returns"]

KIND = "payout_return"


@dataclass(frozen=True, kw_only=True)
class PayoutReturn(AccountMovement):
    """A returned payout's money back to its account; its id is the payout's."""

    reason: str = ""


payout_returns = saga_table(
    "payout_returns",
    sa.Column("account_id", sa.Text, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("reason", sa.String(8), nullable=False, server_default=""),
    listed=False,
)

RETURNS: Movement[PayoutReturn] = Movement(
    name="payout return",
    path=(Step.TRANSFER,),
    legs={Step.TRANSFER: Leg("{id}:return", KIND)},
    accounts=from_funding,
    succeeded=PAYOUT_RETURNED,
    failed=PAYOUT_RETURN_FAILED,
)


def new_return(p: Payout, reason: str, now_us: int) -> PayoutReturn:
    """The return of succeeded payout `p` (the bank's `reason`), ``processing``."""
    if p.status is not MovementStatus.SUCCEEDED:
        raise InvalidState(f"payout {p.id} is {p.status.value}: only a succeeded one returns")
    money = MoveMoney(p.id, p.account_id, p.amount, p.currency)
    return new_saga_object(
        PayoutReturn,
        money,
        p.tenant_id,
        now_us,
        Step.TRANSFER,
        status=MovementStatus.PROCESSING,
        reason=reason,
    )


def return_pb(r: PayoutReturn) -> pb.PayoutReturn:
    """The protobuf form of a payout return."""
    return pb.PayoutReturn(
        id=r.id,
        tenant_id=r.tenant_id,
        payout_id=r.id,
        account_id=r.account_id,
        amount=r.amount,
        currency=r.currency,
        status=r.status.value,
        failure_code=r.failure_code,
        reason=r.reason,
        created_at_us=r.created_at_us,
    )


def _events(r: PayoutReturn, types: Iterable[str], now_us: int) -> list[Event]:
    return object_events(r.id, r.tenant_id, return_pb(r), types, now_us)


async def _step(r: PayoutReturn, caller: Caller, deps: Deps) -> Outcome:
    """Credit the account from the funding account (opened on demand, as for a top-up)."""
    result = await funding_transfer_result(RETURNS, r, caller, deps)
    return RETURNS.apply_ledger(r, result, deps.clock.now_us())


FLOW = movement_flow(
    KIND,
    PayoutReturn,
    payout_returns,
    RETURNS,
    step=_step,
    events=_events,
)
