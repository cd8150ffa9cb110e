"""The payout flow: hold the money, have the bank send it, then post (or void) the hold.

The state machine is :mod:`paymesh.payments.domain.payouts`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from paymesh.payments import domain
from paymesh.payments.domain import BankOutcome, Payout, PayoutStatus, Step
from paymesh.payments.events import payout_events
from paymesh.payments.flows.base import Flow, Outcome, funding, ledger_results, open_account
from paymesh.payments.tables import saga_table
from paymesh.platform.identity import Caller

if TYPE_CHECKING:
    from paymesh.payments.saga import Deps

__all__ = ["ALREADY_RELEASED", "FLOW", "payouts"]

payouts = saga_table(
    "payouts",
    sa.Column("account_id", sa.Text, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
)

# A void finding the hold already gone: it is released, which is all a void wants.
ALREADY_RELEASED = ("pending_transfer_expired", "pending_transfer_already_voided")


async def _step(p: Payout, caller: Caller, deps: Deps) -> Outcome:
    """Ask the bank to send the money (or what became of it), or hold, post or void."""
    now = deps.clock.now_us
    if p.step is Step.BANK:
        answer = await deps.bank.push(p.id, p.account_id, p.amount, p.currency)
        return domain.apply_payout_bank(p, answer, now())
    if p.step is Step.BANK_STATUS:
        answer = await deps.bank.status(p.id)
        if answer.outcome is BankOutcome.UNKNOWN:
            return None
        return domain.apply_payout_bank(p, answer, now())
    if p.step is Step.HOLD:
        problem = await open_account(deps, caller, funding(p.tenant_id, p.currency))
        if problem:
            return domain.apply_payout_ledger(p, problem, now())
    [result] = await ledger_results(deps, caller, [domain.payout_transfer(p)])
    if p.step is Step.VOID and result in ALREADY_RELEASED:
        result = "ok"
    return domain.apply_payout_ledger(p, result, now())


FLOW = Flow(
    kind="payout",
    cls=Payout,
    status=PayoutStatus,
    table=payouts,
    step=_step,
    events=payout_events,
    ledger_ids=lambda payout_id: tuple(f"{payout_id}:{s}" for s in ("hold", "post", "void")),
    # Only the hold is given up (voided); once the bank may have paid, never.
    give_up=domain.give_up_payout,
)
