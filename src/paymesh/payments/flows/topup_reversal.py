"""The top-up reversal flow: a succeeded top-up's money back to the funding source.

``hold`` (pending account → funding, ``{topup_id}:reversal_hold``) → ``bank``
(push, idempotent by the reference ``{topup_id}:reversal``) → ``post``
(``{topup_id}:reversal_post``) → ``succeeded``. An account that no longer
has the money refuses the hold: the reversal fails with
``insufficient_funds`` and nothing moves. The bank's failure voids the hold
(``{topup_id}:reversal_void``) and fails the reversal with the bank's code;
a lost answer is never guessed (``bank_status``). A hold still failing past
its deadline is voided and the reversal fails with ``timeout``; once the
bank may have paid, nothing is given up.

A top-up is reversed at most once: the reversal's id is the top-up's, so
asking again answers the same reversal, whatever became of it. Only a
succeeded top-up of the caller's tenant may be reversed.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import TYPE_CHECKING

import sqlalchemy as sa

from paymesh.contracts.events import TOPUP_REVERSAL_FAILED, TOPUP_REVERSAL_SUCCEEDED, Event
from paymesh.contracts.payments.v1 import payments_pb2 as pb
from paymesh.payments.domain import (
    AccountMovement,
    Movement,
    MovementStatus,
    MoveMoney,
    Step,
    Topup,
    hold_legs,
    into_funding,
    new_saga_object,
)
from paymesh.payments.errors import InvalidState, NotFound
from paymesh.payments.flows.base import CreateRpc, hold_push_post, movement_flow
from paymesh.payments.messages import object_events
from paymesh.payments.tables import saga_table
from paymesh.platform.identity import Caller

if TYPE_CHECKING:
    from paymesh.payments.saga import Deps

__all__ = ["FLOW", "REVERSALS", "TopupReversal", "TopupReversalStatus", "topup_reversals"]

KIND = "topup_reversal"

TopupReversalStatus = MovementStatus


class TopupReversal(AccountMovement):
    """A succeeded top-up's money back to the funding source; its id is the top-up's."""


topup_reversals = saga_table(
    "topup_reversals",
    sa.Column("account_id", sa.Text, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    listed=False,
)

# -- the state machine (pure) ------------------------------------------------------

REVERSALS: Movement[TopupReversal] = Movement(
    name="top-up reversal",
    path=(Step.HOLD, Step.BANK, Step.POST),
    legs=hold_legs("{id}:reversal_", KIND),
    accounts=into_funding,
    succeeded=TOPUP_REVERSAL_SUCCEEDED,
    failed=TOPUP_REVERSAL_FAILED,
    given_up={Step.HOLD: Step.VOID},
    bank_ref="{id}:reversal",
)


def new_reversal(t: Topup, now_us: int) -> TopupReversal:
    """The reversal of succeeded top-up `t`, ``processing``, with the hold to make first."""
    if t.status is not MovementStatus.SUCCEEDED:
        raise InvalidState(f"top-up {t.id} is {t.status.value}: only a succeeded one is reversed")
    money = MoveMoney(t.id, t.account_id, t.amount, t.currency)
    return new_saga_object(
        TopupReversal, money, t.tenant_id, now_us, Step.HOLD, status=MovementStatus.PROCESSING
    )


# -- the step, the events, the RPC -----------------------------------------------------


def _events(r: TopupReversal, types: Iterable[str], now_us: int) -> list[Event]:
    return object_events(r.id, r.tenant_id, reversal_pb(r), types, now_us)


async def _begin(request: pb.ReverseTopupRequest, caller: Caller, deps: Deps) -> TopupReversal:
    """The reversal of the caller's top-up (not found: another tenant's, or none)."""
    topup: Topup | None = await deps.store.get("topup", request.topup_id)
    if topup is None or topup.tenant_id != caller.tenant_id:
        raise NotFound(f"no top-up {request.topup_id}")
    stored: TopupReversal | None = await deps.store.get(KIND, topup.id)
    return stored or new_reversal(topup, deps.clock.now_us())


def reversal_pb(r: TopupReversal) -> pb.TopupReversal:
    """The protobuf form of a top-up reversal."""
    return pb.TopupReversal(
        id=r.id,
        tenant_id=r.tenant_id,
        topup_id=r.id,
        account_id=r.account_id,
        amount=r.amount,
        currency=r.currency,
        status=r.status.value,
        failure_code=r.failure_code,
        created_at_us=r.created_at_us,
    )


FLOW = movement_flow(
    KIND,
    TopupReversal,
    topup_reversals,
    REVERSALS,
    step=partial(hold_push_post, REVERSALS),
    events=_events,
    rpcs=(
        CreateRpc(
            name="ReverseTopup",
            begin=_begin,
            same=lambda new, stored: bool(new.tenant_id == stored.tenant_id),
            to_pb=reversal_pb,
        ),
    ),
)
