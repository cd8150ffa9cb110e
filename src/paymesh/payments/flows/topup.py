"""The top-up flow: pull the money from the bank, then credit it from the funding account.

The state machine is :mod:`paymesh.payments.domain.topups`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from paymesh.payments.domain import TOPUPS, Step, Topup
from paymesh.payments.flows.base import (
    Outcome,
    account_problem,
    ask_bank,
    funding_transfer_result,
    movement_flow,
)
from paymesh.payments.messages import topup_events
from paymesh.payments.tables import saga_table
from paymesh.platform.identity import Caller
from paymesh.platform.logging import get_logger

if TYPE_CHECKING:
    from paymesh.payments.saga import Deps

__all__ = ["FLOW", "topups"]

log = get_logger(__name__)

topups = saga_table(
    "topups",
    sa.Column("account_id", sa.Text, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
)


async def _step(t: Topup, caller: Caller, deps: Deps) -> Outcome:
    """Ask the bank for the money (or what became of the request), or credit the account."""
    if t.step is Step.BANK:
        problem = await account_problem(deps, caller, t.account_id, t.currency)
        if problem:
            return TOPUPS.fail(t, problem, deps.clock.now_us())
    if t.step in (Step.BANK, Step.BANK_STATUS):
        return await ask_bank(TOPUPS, t, deps, deps.bank.pull)
    result = await funding_transfer_result(TOPUPS, t, caller, deps)
    if result not in ("ok", "exists"):
        # The bank took the money and the ledger refused it: a human must look.
        log.error("topup_credit_refused_after_pull", topup_id=t.id, result=result)
    return TOPUPS.apply_ledger(t, result, deps.clock.now_us())


FLOW = movement_flow("topup", Topup, topups, TOPUPS, step=_step, events=topup_events)
