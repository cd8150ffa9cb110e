"""The runner of top-ups, payouts and P2P transfers: one generic loop over their steps.

See :mod:`paymesh.payments.saga` for how steps run and when they are given up.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from paymesh.contracts.events import Event
from paymesh.payments import domain
from paymesh.payments.domain import BankOutcome, P2PTransfer, Payout, Step, Topup
from paymesh.payments.events import payout_events, topup_events, transfer_events
from paymesh.payments.ports import LedgerAccount
from paymesh.payments.saga_base import (
    Deps,
    Lease,
    claim,
    leased,
    ledger_results,
    open_account,
    past_deadline,
    postpone,
    wait_to_settle,
    with_retries,
)
from paymesh.platform.identity import Caller
from paymesh.platform.logging import get_logger

__all__ = ["run_payout", "run_topup", "run_transfer"]

log = get_logger(__name__)


async def run_topup(
    topup_id: str, *, caller: Caller, deps: Deps, lease: Lease = "claim"
) -> Topup | None:
    """Pull the money from the bank, then credit it from the tenant's funding account."""
    found: Topup | None = await _run("topup", topup_id, caller, deps, _topup_step, lease)
    return found


async def run_payout(
    payout_id: str, *, caller: Caller, deps: Deps, lease: Lease = "claim"
) -> Payout | None:
    """Hold the money, have the bank send it, then post (or void) the hold."""
    found: Payout | None = await _run("payout", payout_id, caller, deps, _payout_step, lease)
    return found


async def run_transfer(
    transfer_id: str, *, caller: Caller, deps: Deps, lease: Lease = "claim"
) -> P2PTransfer | None:
    """Move the money between the two accounts if it is still to be done."""
    found: P2PTransfer | None = await _run(
        "transfer", transfer_id, caller, deps, _transfer_step, lease
    )
    return found


# -- the generic runner of top-ups, payouts and transfers ---------------------------

Outcome = tuple[Any, tuple[str, ...]] | None
StepFn = Callable[[Any, Caller, Deps], Awaitable[Outcome]]
_EVENTS: dict[str, Callable[[Any, tuple[str, ...], int], list[Event]]] = {
    "topup": topup_events,
    "payout": payout_events,
    "transfer": transfer_events,
}


async def _run(
    kind: str, object_id: str, caller: Caller, deps: Deps, step: StepFn, lease: Lease
) -> Any:
    """Run the object's recorded steps until none is left or one must wait.

    A step answers the transition it makes, or None when the bank does not
    know yet (the step is asked again later, with backoff). A new wait for
    the bank is left to the Resumer rather than polled inline.
    """
    while True:
        obj = await deps.store.get(kind, object_id)
        if obj is None or obj.step is None or not await claim(kind, obj, deps, lease):
            return obj
        lease = "held"  # from here on, each step this runner records is leased to it
        if await wait_to_settle(kind, obj, deps):
            return await deps.store.get(kind, object_id)
        try:
            outcome = await with_retries(deps.retry, partial(step, obj, caller, deps))
        except Exception as exc:
            late = past_deadline(obj, deps)
            outcome = _GIVE_UP[kind](obj, deps.clock.now_us()) if late else None
            event = f"{kind}_step_given_up" if outcome else f"{kind}_step_postponed"
            log.warning(event, id=obj.id, step=obj.step, error=repr(exc))
        if outcome is None:
            await postpone(deps, kind, obj.id, obj.step, obj.attempts)
            return await deps.store.get(kind, object_id)
        new, types = outcome
        now = deps.clock.now_us()
        waiting = new.step is Step.BANK_STATUS and obj.step is not Step.BANK_STATUS
        if waiting:
            delay = domain.retry_delay_s(1, deps.retry.resume_base_s, deps.retry.resume_max_s)
            new = dataclasses.replace(
                new,
                attempts=1,
                next_attempt_at_us=now + int(delay * 1_000_000),
                step_started_at_us=now,
            )
        else:
            new = leased(new, deps, after=obj.step)
        events = _EVENTS[kind](new, types, now)
        won = await deps.store.save(kind, new, status=obj.status, step=obj.step, events=events)
        if not won:
            log.warning("saga_step_raced", kind=kind, id=obj.id, step=obj.step)
        if waiting or not won:  # the Resumer asks the bank; or another runner carries on
            return await deps.store.get(kind, object_id)


def _funding(tenant_id: str, currency: str) -> LedgerAccount:
    return LedgerAccount(
        id=domain.funding_account_id(tenant_id, currency), currency=currency, code="funding"
    )


async def _account_problem(deps: Deps, caller: Caller, account_id: str, currency: str) -> str:
    """Why money cannot go to `account_id` ("" when it can): checked before the bank moves it."""
    found = await deps.ledger.lookup_accounts(caller, [account_id])
    if not found:
        return "account_not_found"
    if found[0].currency != currency:
        return "currency_mismatch"
    return ""


async def _topup_step(t: Topup, caller: Caller, deps: Deps) -> Outcome:
    now = deps.clock.now_us
    if t.step is Step.BANK:
        problem = await _account_problem(deps, caller, t.account_id, t.currency)
        if problem:
            return domain.fail_topup(t, problem, now())
        answer = await deps.bank.pull(t.id, t.account_id, t.amount, t.currency)
        return domain.apply_topup_bank(t, answer, now())
    if t.step is Step.BANK_STATUS:
        answer = await deps.bank.status(t.id)
        if answer.outcome is BankOutcome.UNKNOWN:
            return None
        return domain.apply_topup_bank(t, answer, now())
    problem = await open_account(deps, caller, _funding(t.tenant_id, t.currency))
    if problem:
        return domain.settle_topup(t, problem, now())
    [result] = await ledger_results(deps, caller, [domain.topup_transfer(t)])
    if result not in ("ok", "exists"):
        # The bank took the money and the ledger refused it: a human must look.
        log.error("topup_credit_refused_after_pull", topup_id=t.id, result=result)
    return domain.settle_topup(t, result, now())


async def _payout_step(p: Payout, caller: Caller, deps: Deps) -> Outcome:
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
        problem = await open_account(deps, caller, _funding(p.tenant_id, p.currency))
        if problem:
            return domain.apply_payout_ledger(p, problem, now())
    [result] = await ledger_results(deps, caller, [domain.payout_transfer(p)])
    if p.step is Step.VOID and result in _ALREADY_RELEASED:
        result = "ok"
    return domain.apply_payout_ledger(p, result, now())


_ALREADY_RELEASED = ("pending_transfer_expired", "pending_transfer_already_voided")


async def _transfer_step(t: P2PTransfer, caller: Caller, deps: Deps) -> Outcome:
    move = domain.move_transfer(t)
    if t.step is Step.LOOKUP:
        found = await deps.ledger.lookup_transfers(caller, [move.id])
        result = "exists" if found else domain.TIMEOUT
    else:
        [result] = await ledger_results(deps, caller, [move])
    return domain.settle_p2p_transfer(t, result, deps.clock.now_us())


def _give_up_transfer(t: P2PTransfer, now_us: int) -> Outcome:
    if t.step is not Step.TRANSFER:
        return None
    return domain.find_by_lookup(t, now_us), ()


def _give_up_payout(p: Payout, now_us: int) -> Outcome:
    return domain.give_up_payout(p, now_us)


# What a step past its deadline becomes (None: it is never given up; see the docstring).
_GIVE_UP: dict[str, Callable[[Any, int], Outcome]] = {
    "topup": lambda _t, _now: None,
    "payout": _give_up_payout,
    "transfer": _give_up_transfer,
}
