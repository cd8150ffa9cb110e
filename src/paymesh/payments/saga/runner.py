"""The runner: one loop that runs any flow's recorded steps, reading the flow's record.

See the package docstring for how steps run and when they are given up.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any

from paymesh.payments import domain, flows
from paymesh.payments.domain import Payment, Step
from paymesh.payments.errors import InvalidState, PaymentBusy
from paymesh.payments.ports import Deps
from paymesh.payments.saga.leases import Lease, claim, leased
from paymesh.payments.saga.retries import past_deadline, postpone, wait_to_settle, with_retries
from paymesh.platform.identity import Caller
from paymesh.platform.logging import get_logger

__all__ = [
    "RESUMER_CLIENT_ID",
    "expire_authorizations",
    "run",
    "run_payment",
]

log = get_logger(__name__)

# The client id the saga's own calls carry when no request started them.
RESUMER_CLIENT_ID = "paymesh-payments"


async def run(
    kind: str,
    object_id: str,
    *,
    caller: Caller,
    deps: Deps,
    lease: Lease = "claim",
    recorded: Any = None,
) -> Any:
    """Run the object's recorded steps until none is left or one must wait (or another
    live runner holds the step's lease: see :func:`~paymesh.payments.saga.leases.claim`).

    A step answers the transition it makes, or None when the bank does not
    know yet (the step is asked again later, with backoff). A new wait for
    the bank is left to the Resumer rather than polled inline. A step still
    failing after its inline retries is postponed, or past its deadline given
    up as the flow says (:attr:`~paymesh.payments.flows.base.Flow.give_up`).

    `recorded` is the object as this runner has just written it, if it has (else the
    row is read). After each transition it wins, the runner goes on from the object it
    wrote rather than reading it back: the conditional write made the row equal to it,
    and the lease that write took keeps every other runner off the row.
    """
    flow = flows.flow(kind)
    obj = recorded
    while True:
        if obj is None:
            obj = await deps.store.get(kind, object_id)
        if obj is None or obj.step is None or not await claim(kind, obj, deps, lease):
            return obj
        lease = "held"  # from here on, each step this runner records is leased to it
        if await wait_to_settle(kind, obj, deps):
            return await deps.store.get(kind, object_id)
        try:
            outcome = await with_retries(deps.retry, partial(flow.step, obj, caller, deps))
        except Exception as exc:
            late = past_deadline(obj, deps)
            outcome = flow.give_up(obj, deps.clock.now_us()) if late else None
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
        events = flow.events(new, types, now)
        won = await deps.store.save(kind, new, status=obj.status, step=obj.step, events=events)
        if not won:
            log.warning("saga_step_raced", kind=kind, id=obj.id, step=obj.step)
        if waiting or not won:  # the Resumer asks the bank; or another runner carries on
            return await deps.store.get(kind, object_id)
        obj = new


async def run_payment(
    payment_id: str, *, caller: Caller, deps: Deps, lease: Lease = "claim"
) -> Payment | None:
    """Risk, hold, capture or void: the payment's recorded steps (see :func:`run`)."""
    found: Payment | None = await run("payment", payment_id, caller=caller, deps=deps, lease=lease)
    return found


async def expire_authorizations(deps: Deps) -> int:
    """Cancel every authorisation not captured in time: void its hold; count them."""
    now = deps.clock.now_us()
    expired = await deps.store.expired_authorizations(now)
    for item in expired:
        p = await deps.store.get_payment(item.id)
        if p is None:
            continue
        try:
            started = domain.begin_expiry(p, now)
        except (InvalidState, PaymentBusy):
            continue  # captured, canceled or busy meanwhile
        if await deps.store.save_payment(leased(started, deps), status=p.status, step=None):
            caller = Caller(tenant_id=p.tenant_id, client_id=RESUMER_CLIENT_ID)
            await run_payment(p.id, caller=caller, deps=deps, lease="held")
    return len(expired)
