"""Running saga steps: inline after a command, and later by the :class:`Resumer`.

A step is recorded on its row before the remote call (by the command that
started it, or by the transition that made it next) and its result is
applied after the call by a conditional transition, together with its
events. Every remote call is idempotent (deterministic ledger transfer ids;
risk decides once per payment; the bank knows each request by the top-up or
payout id), so re-running a recorded step is always safe: ``exists`` counts
as success. A bank answer that did not come (``unknown``) is never guessed:
the object waits at ``bank_status`` and the Resumer asks the bank, with
backoff, until it knows.

A business refusal fails the object at once. A transient failure is retried
inline a few times with backoff; if it persists the step stays recorded,
the row gets a ``next_attempt_at_us`` with exponential backoff, and the
Resumer runs it again when it is due. A step just recorded is leased to its
runner for ``lease_s`` so the Resumer does not run it beside it.

The deadline. Each row keeps when its step was first recorded
(``step_started_at_us``); a step still failing transiently
``RetryPolicy.step_deadline_s`` after that is given up, safely: an outcome
is never guessed, money never moves twice and is never left held.

- payment ``risk``: nothing moved; the payment fails with ``timeout``.
- payment ``hold`` (and payout ``hold``): the hold may exist, so its void
  comes next (the compensation) and the object fails with ``timeout`` once
  the void is done; a void answering ``pending_transfer_not_found`` then
  counts as done (the hold was never made).
- payment ``capture``: the post may have happened, so the payment asks the
  ledger (step ``lookup``: LookupTransfers of ``:capture`` and ``:fee``, one
  linked batch): posted, it succeeded; not, its hold is voided and it fails
  with ``timeout`` (a manual capture too: the authorisation is released, the
  merchant makes a new payment; holding money for a capture that may never
  come is worse). A void that finds the hold posted goes back to the lookup.
- refunds and P2P transfers (one single-phase transfer): step ``lookup``;
  found, it succeeded; not found, it failed with ``timeout`` (a failed refund
  no longer counts against the refundable amount).
- Never given up: voids (compensation must finish), lookups (they move
  nothing), the payout's post (the bank may have paid), the top-up's credit
  (the bank took the money: it must arrive), and waits for the bank (which
  resolve unknown outcomes their own way). These keep their backoff, capped
  at ``resume_max_s``.

Why a lookup is trusted only later. A request whose answer timed out on the
client may still be executing on the ledger and commit after the client gave
up, so a lookup made at once could answer "not found" for a transfer that
then appears, and the object would fail with the money moved. So, once a
step is given up, its transfer is never sent again (the row's step changed
by a conditional update; any runner reads the new step), and its first
lookup or void (``lookup``, or a void of a given-up hold) waits until
``RetryPolicy.settle_s`` after the give-up. ``settle_s`` exceeds what one
inline run of a step can last (every attempt bounded by the gRPC deadline,
plus the waits between them), so any attempt already in flight, including
one a concurrent runner sent from a row it read before the change, has
ended by then, and whatever it did is visible to the lookup. The guard is on
the row (``step_started_at_us + settle_s``), so the Resumer's first pass
after a restart, which ignores ``next_attempt_at_us``, respects it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Awaitable, Callable
from functools import partial

from paymesh.payments import domain
from paymesh.payments.domain import Payment, Refund, Step, Transition
from paymesh.payments.errors import InvalidState, PaymentBusy, RemoteRefusal
from paymesh.payments.events import payment_events, refund_events
from paymesh.payments.ports import LedgerAccount
from paymesh.payments.saga_base import (
    Deps,
    Lease,
    RetryPolicy,
    claim,
    leased,
    ledger_results,
    open_account,
    past_deadline,
    postpone,
    wait_to_settle,
    with_retries,
)
from paymesh.payments.saga_flows import run_payout, run_topup, run_transfer
from paymesh.payments.store import Due
from paymesh.platform.identity import Caller
from paymesh.platform.locks import SessionLock
from paymesh.platform.logging import get_logger
from paymesh.platform.metrics import SAGA_OLDEST_OPEN_AGE, SAGAS_OPEN

__all__ = [
    "RESUMER_CLIENT_ID",
    "Deps",
    "Lease",
    "Resumer",
    "RetryPolicy",
    "expire_authorizations",
    "leased",
    "run_payment",
    "run_payout",
    "run_refund",
    "run_topup",
    "run_transfer",
]

log = get_logger(__name__)

RESUMER_CLIENT_ID = "paymesh-payments"
SERVICE = "payments"


async def _payment_step(p: Payment, caller: Caller, deps: Deps) -> Transition:
    now = deps.clock.now_us
    assert p.step is not None
    if p.step is Step.LOOKUP:  # a refusal is retried too: never guessed
        found = await deps.ledger.lookup_transfers(caller, domain.lookup_ids(p))
        return domain.apply_capture_lookup(p, found, now())
    try:
        if p.step is Step.RISK:
            assessment = await deps.risk.decide(caller, p)
            return domain.apply_risk(p, assessment, now())
        transfers = domain.step_transfers(p)
        if len(transfers) > 1:  # the fee goes to the tenant's revenue account, made on demand
            revenue = LedgerAccount(
                id=domain.revenue_account_id(p.tenant_id, p.currency),
                currency=p.currency,
                code="revenue",
            )
            problem = await open_account(deps, caller, revenue)
            if problem:
                return domain.fail_step(p, problem, f"the revenue account: {problem}", now())
        result = domain.batch_result(await deps.ledger.create_transfers(caller, transfers))
    except RemoteRefusal as refusal:
        return domain.fail_step(p, refusal.code, refusal.message, now())
    if domain.step_settled(p.step, result) or (
        p.step is Step.VOID and domain.void_settled(p, result)
    ):
        return domain.complete_step(p, now())
    posted = domain.void_found_posted(p, result, now())
    if posted is not None:
        return posted
    message = f"the ledger refused the {p.step.value} transfer: {result}"
    return domain.fail_step(p, domain.failure_code(result), message, now())


async def run_payment(
    payment_id: str, *, caller: Caller, deps: Deps, lease: Lease = "claim"
) -> Payment | None:
    """Run the payment's recorded steps until none is left or one must wait (or another
    live runner holds the step's lease: see :func:`~paymesh.payments.saga_base.claim`)."""
    while True:
        p = await deps.store.get_payment(payment_id)
        if p is None or p.step is None or not await claim("payment", p, deps, lease):
            return p
        lease = "held"  # from here on, each step this runner records is leased to it
        if await wait_to_settle("payment", p, deps):
            return await deps.store.get_payment(payment_id)
        try:
            new, types = await with_retries(deps.retry, partial(_payment_step, p, caller, deps))
        except Exception as exc:
            if p.step in _GIVEN_UP_PAYMENT_STEPS and past_deadline(p, deps):
                log.warning("payment_step_given_up", payment_id=p.id, step=p.step, error=repr(exc))
                new, types = domain.give_up_step(p, deps.clock.now_us())
            else:
                log.warning("payment_step_postponed", payment_id=p.id, step=p.step, error=repr(exc))
                await postpone(deps, "payment", p.id, p.step, p.attempts)
                return await deps.store.get_payment(payment_id)
        events = payment_events(new, types, deps.clock.now_us())
        won = await deps.store.save_payment(
            leased(new, deps, after=p.step), status=p.status, step=p.step, events=events
        )
        if not won:  # another runner finished this step; it carries on from here
            log.warning("saga_step_raced", kind="payment", id=p.id, step=p.step)
            return await deps.store.get_payment(payment_id)


_GIVEN_UP_PAYMENT_STEPS = (Step.RISK, Step.HOLD, Step.CAPTURE)


async def run_refund(
    refund_id: str, *, caller: Caller, deps: Deps, lease: Lease = "claim"
) -> Refund | None:
    """Run the refund's transfer if it is still to be done (or, past its deadline, find it)."""
    r = await deps.store.get_refund(refund_id)
    if r is None or r.step is None or not await claim("refund", r, deps, lease):
        return r
    if await wait_to_settle("refund", r, deps):
        return await deps.store.get_refund(refund_id)
    transfer = domain.refund_transfer(r)
    try:
        if r.step is Step.LOOKUP:
            found = await with_retries(
                deps.retry, lambda: deps.ledger.lookup_transfers(caller, [transfer.id])
            )
            result = "exists" if found else domain.TIMEOUT
        else:
            [result] = await with_retries(
                deps.retry, lambda: ledger_results(deps, caller, [transfer])
            )
    except Exception as exc:
        if r.step is Step.TRANSFER and past_deadline(r, deps):
            log.warning("refund_step_given_up", refund_id=r.id, error=repr(exc))
            looking = leased(domain.find_by_lookup(r, deps.clock.now_us()), deps, after=r.step)
            ready = looking.step_started_at_us + int(deps.retry.settle_s * 1_000_000)
            looking = dataclasses.replace(looking, next_attempt_at_us=ready)
            await deps.store.save("refund", looking, status=r.status, step=r.step)
        else:
            log.warning("refund_step_postponed", refund_id=r.id, error=repr(exc))
            await postpone(deps, "refund", r.id, r.step, r.attempts)
        return await deps.store.get_refund(refund_id)
    new, types = domain.settle_refund(r, result, deps.clock.now_us())
    events = refund_events(new, types, deps.clock.now_us())
    if not await deps.store.settle_refund(new, events, step=r.step):
        log.warning("saga_step_raced", kind="refund", id=r.id, step=r.step)
    return await deps.store.get_refund(refund_id)


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


_RUNNERS: dict[str, Callable[..., Awaitable[object]]] = {
    "payment": run_payment,
    "refund": run_refund,
    "topup": run_topup,
    "payout": run_payout,
    "transfer": run_transfer,
}


class Resumer:
    """Runs again every saga step that is due: after a transient failure or a restart.

    On SQLite (the embedded shape: one process) its first pass, right when it
    starts, takes every step in progress whatever its lease, so sagas cut short
    by a crash resume at once. On PostgreSQL several replicas may run: each holds
    a liveness lock (`liveness`) and marks the steps it records with its owner
    id, and a pass takes, besides the due steps, those whose owner's lock is
    gone (the process died), but never a live replica's leased step. After this
    process (re)takes its own lock it waits `grace_s` before judging others, so
    that after a database restart every live replica has taken its lock again.
    Each pass also cancels the authorisations that expired uncaptured.
    """

    def __init__(
        self,
        deps: Deps,
        *,
        interval_s: float,
        liveness: SessionLock | None = None,
        grace_s: float | None = None,
    ) -> None:
        self._deps = deps
        self._interval_s = interval_s
        self._liveness = liveness
        self._grace_s = max(3 * interval_s, 2.0) if grace_s is None else grace_s
        self._background: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        # The (flow, step) series the last pass set, so a step that emptied reads 0.
        self._open: set[tuple[str, str]] = set()

    async def _orphans(self) -> bool:
        """Whether this pass may take steps whose owner is gone."""
        if self._liveness is None or not await self._liveness.held():
            return False
        taken = self._liveness.taken_at
        return taken is not None and time.monotonic() - taken >= self._grace_s

    async def measure(self) -> None:
        """Set the saga gauges: objects in progress by flow and step, the oldest's age.

        One query per pass (:meth:`~paymesh.payments.store.PaymentStore.open_steps`).
        Every replica reads the same database, so each reports the same numbers.
        """
        found = await self._deps.store.open_steps()
        now = self._deps.clock.now_us()
        oldest = dict.fromkeys(_RUNNERS, now)
        seen: set[tuple[str, str]] = set()
        for item in found:
            SAGAS_OPEN.labels(service=SERVICE, flow=item.flow, step=item.step).set(item.count)
            seen.add((item.flow, item.step))
            oldest[item.flow] = min(oldest[item.flow], item.oldest_started_at_us)
        for flow, step in self._open - seen:
            SAGAS_OPEN.labels(service=SERVICE, flow=flow, step=step).set(0)
        self._open = seen
        for flow, started in oldest.items():
            age = max(0.0, (now - started) / 1_000_000)
            SAGA_OLDEST_OPEN_AGE.labels(service=SERVICE, flow=flow).set(age)

    async def run_once(self, *, everything: bool = False) -> int:
        """Run every due step once (every step in progress if `everything`), then cancel
        expired authorisations; count them all. Each pass first sets the saga gauges."""
        try:
            await self.measure()
        except Exception as exc:  # a metric never stops the resuming
            log.warning("saga_gauges_failed", error=type(exc).__name__)
        orphans = await self._orphans()
        self._deps.store.orphans = orphans
        due = await self._deps.store.due(
            None if everything else self._deps.clock.now_us(), orphans=orphans
        )
        for item in due:
            await self._resume(item, "take" if everything else "claim")
        try:
            expired = await expire_authorizations(self._deps)
        except Exception:
            log.exception("authorization_expiry_failed")
            expired = 0
        return len(due) + expired

    async def _resume(self, item: Due, lease: Lease) -> None:
        caller = Caller(tenant_id=item.tenant_id, client_id=RESUMER_CLIENT_ID)
        try:
            await _RUNNERS[item.kind](item.id, caller=caller, deps=self._deps, lease=lease)
        except Exception:
            log.exception("saga_resume_failed", kind=item.kind, id=item.id)

    async def _keep_alive(self) -> None:
        """Hold the liveness lock, taking it again soon after the database comes back,
        whatever a (possibly long) pass of resuming is doing."""
        assert self._liveness is not None
        while True:
            try:
                await self._liveness.held()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("payments_liveness_unreachable", error=type(exc).__name__)
            await asyncio.sleep(min(self._interval_s, 1.0))

    async def run(self) -> None:
        """Resume until cancelled."""
        everything = self._liveness is None
        if self._liveness is not None:
            alive = asyncio.create_task(self._keep_alive(), name="payments-liveness")
            self._background.add(alive)
            alive.add_done_callback(self._background.discard)
        while True:
            try:
                await self.run_once(everything=everything)
                everything = False
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("saga_resumer_failed")
            await asyncio.sleep(self._interval_s)

    def start(self) -> None:
        """Resume in the background, starting now."""
        self._task = asyncio.create_task(self.run(), name="payments-resumer")

    async def stop(self) -> None:
        """Stop resuming."""
        for task in [*self._background, self._task]:
            if task is None:
                continue
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._task = None
