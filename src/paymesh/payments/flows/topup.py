"""The top-up flow: pull the money from the bank, then credit it from the funding account.

The state machine is :mod:`paymesh.payments.domain.topups`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from paymesh.payments import domain
from paymesh.payments.domain import BankOutcome, Step, Topup, TopupStatus
from paymesh.payments.events import topup_events
from paymesh.payments.flows.base import (
    Flow,
    Outcome,
    account_problem,
    funding,
    ledger_results,
    open_account,
)
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
    now = deps.clock.now_us
    if t.step is Step.BANK:
        problem = await account_problem(deps, caller, t.account_id, t.currency)
        if problem:
            return domain.fail_topup(t, problem, now())
        answer = await deps.bank.pull(t.id, t.account_id, t.amount, t.currency)
        return domain.apply_topup_bank(t, answer, now())
    if t.step is Step.BANK_STATUS:
        answer = await deps.bank.status(t.id)
        if answer.outcome is BankOutcome.UNKNOWN:
            return None
        return domain.apply_topup_bank(t, answer, now())
    problem = await open_account(deps, caller, funding(t.tenant_id, t.currency))
    if problem:
        return domain.settle_topup(t, problem, now())
    [result] = await ledger_results(deps, caller, [domain.topup_transfer(t)])
    if result not in ("ok", "exists"):
        # The bank took the money and the ledger refused it: a human must look.
        log.error("topup_credit_refused_after_pull", topup_id=t.id, result=result)
    return domain.settle_topup(t, result, now())


# Never given up: the bank may have taken the money, so the credit must arrive.
FLOW = Flow(
    kind="topup",
    cls=Topup,
    status=TopupStatus,
    table=topups,
    step=_step,
    events=topup_events,
    ledger_ids=lambda topup_id: (f"{topup_id}:credit",),
)
