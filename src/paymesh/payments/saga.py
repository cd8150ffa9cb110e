"""Running saga steps: inline after a command, and later by the :class:`Resumer`.

A step is recorded on its row before the remote call (by the command that
started it, or by the transition that made it next) and its result is
applied after the call by a conditional transition, together with its
events. Every remote call is idempotent (deterministic ledger transfer ids;
risk decides once per payment), so re-running a recorded step is always
safe: ``exists`` counts as success.

A business refusal fails the object at once. A transient failure is retried
inline a few times with backoff; if it persists the step stays recorded,
the row gets a ``next_attempt_at_us`` with exponential backoff, and the
Resumer runs it again when it is due. A step just recorded is leased to its
runner for ``lease_s`` so the Resumer does not run it beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from paymesh.payments import domain
from paymesh.payments.domain import Payment, Refund, Step, Topup, Transition
from paymesh.payments.errors import RemoteRefusal
from paymesh.payments.events import payment_events, refund_events, topup_events
from paymesh.payments.ports import LedgerAccount, LedgerClient, RiskClient
from paymesh.payments.store import Due, PaymentStore
from paymesh.platform.clock import Clock
from paymesh.platform.identity import Caller
from paymesh.platform.logging import get_logger

__all__ = [
    "RESUMER_CLIENT_ID",
    "Deps",
    "Resumer",
    "RetryPolicy",
    "leased",
    "run_payment",
    "run_refund",
    "run_topup",
]

log = get_logger(__name__)

RESUMER_CLIENT_ID = "paymesh-payments"

T = TypeVar("T")
S = TypeVar("S", Payment, Refund, Topup)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard a step is tried inline, and how the Resumer backs off after that."""

    inline_attempts: int = 3
    inline_wait_s: float = 0.05
    inline_wait_max_s: float = 0.5
    resume_base_s: float = 1.0
    resume_max_s: float = 300.0
    lease_s: float = 30.0


@dataclass(frozen=True)
class Deps:
    """What the use cases and the saga runner need."""

    store: PaymentStore
    ledger: LedgerClient
    risk: RiskClient
    clock: Clock
    retry: RetryPolicy = RetryPolicy()


def leased(obj: S, deps: Deps) -> S:
    """`obj` with its recorded step left to the current runner for a while."""
    if obj.step is None:
        return obj
    until = deps.clock.now_us() + int(deps.retry.lease_s * 1_000_000)
    return dataclasses.replace(obj, next_attempt_at_us=until)


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, Exception) and not isinstance(exc, RemoteRefusal)


async def _with_retries(policy: RetryPolicy, call: Callable[[], Awaitable[T]]) -> T:
    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.inline_attempts),
        wait=wait_exponential(multiplier=policy.inline_wait_s, max=policy.inline_wait_max_s),
        retry=retry_if_exception(_transient),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await call()
    raise AssertionError("unreachable")  # pragma: no cover - reraise=True


async def _postpone(deps: Deps, kind: str, object_id: str, step: Step, attempts: int) -> None:
    attempts += 1
    delay = domain.retry_delay_s(attempts, deps.retry.resume_base_s, deps.retry.resume_max_s)
    await deps.store.postpone(
        kind,
        object_id,
        step,
        attempts=attempts,
        next_attempt_at_us=deps.clock.now_us() + int(delay * 1_000_000),
    )


async def _payment_step(p: Payment, caller: Caller, deps: Deps) -> Transition:
    now = deps.clock.now_us
    assert p.step is not None
    try:
        if p.step is Step.RISK:
            assessment = await deps.risk.decide(caller, p)
            return domain.apply_risk(p, assessment, now())
        transfer = domain.step_transfer(p)
        [result] = await deps.ledger.create_transfers(caller, [transfer])
    except RemoteRefusal as refusal:
        return domain.fail_step(p, refusal.code, refusal.message, now())
    if domain.step_settled(p.step, result):
        return domain.complete_step(p, now())
    message = f"the ledger refused the {p.step.value} transfer: {result}"
    return domain.fail_step(p, domain.failure_code(result), message, now())


async def run_payment(payment_id: str, *, caller: Caller, deps: Deps) -> Payment | None:
    """Run the payment's recorded steps until none is left or one must wait."""
    while True:
        p = await deps.store.get_payment(payment_id)
        if p is None or p.step is None:
            return p
        try:
            new, types = await _with_retries(deps.retry, partial(_payment_step, p, caller, deps))
        except Exception as exc:
            log.warning("payment_step_postponed", payment_id=p.id, step=p.step, error=repr(exc))
            await _postpone(deps, "payment", p.id, p.step, p.attempts)
            return await deps.store.get_payment(payment_id)
        events = payment_events(new, types, deps.clock.now_us())
        won = await deps.store.save_payment(
            leased(new, deps), status=p.status, step=p.step, events=events
        )
        if not won:  # another runner finished this step; it carries on from here
            return await deps.store.get_payment(payment_id)


async def run_refund(refund_id: str, *, caller: Caller, deps: Deps) -> Refund | None:
    """Run the refund's transfer if it is still to be done."""
    r = await deps.store.get_refund(refund_id)
    if r is None or r.step is None:
        return r
    transfer = domain.refund_transfer(r)
    try:
        [result] = await _with_retries(
            deps.retry, lambda: deps.ledger.create_transfers(caller, [transfer])
        )
    except RemoteRefusal as refusal:
        result = refusal.code
    except Exception as exc:
        log.warning("refund_step_postponed", refund_id=r.id, error=repr(exc))
        await _postpone(deps, "refund", r.id, r.step, r.attempts)
        return await deps.store.get_refund(refund_id)
    new, types = domain.settle_refund(r, result, deps.clock.now_us())
    await deps.store.settle_refund(new, refund_events(new, types, deps.clock.now_us()))
    return await deps.store.get_refund(refund_id)


async def _topup_transfer(t: Topup, caller: Caller, deps: Deps) -> str:
    funding = LedgerAccount(
        id=domain.funding_account_id(t.tenant_id, t.currency), currency=t.currency, code="funding"
    )
    [opened] = await deps.ledger.create_accounts(caller, [funding])
    if opened not in ("ok", "exists"):
        return f"funding_account_{opened}"
    [result] = await deps.ledger.create_transfers(caller, [domain.topup_transfer(t)])
    return result


async def run_topup(topup_id: str, *, caller: Caller, deps: Deps) -> Topup | None:
    """Open the tenant's funding account if needed, then move the money in."""
    t = await deps.store.get_topup(topup_id)
    if t is None or t.step is None:
        return t
    current = t
    try:
        result = await _with_retries(deps.retry, lambda: _topup_transfer(current, caller, deps))
    except RemoteRefusal as refusal:
        result = refusal.code
    except Exception as exc:
        log.warning("topup_step_postponed", topup_id=t.id, error=repr(exc))
        await _postpone(deps, "topup", t.id, t.step, t.attempts)
        return await deps.store.get_topup(topup_id)
    new, types = domain.settle_topup(t, result, deps.clock.now_us())
    await deps.store.settle_topup(new, topup_events(new, types, deps.clock.now_us()))
    return await deps.store.get_topup(topup_id)


_RUNNERS: dict[str, Callable[..., Awaitable[object]]] = {
    "payment": run_payment,
    "refund": run_refund,
    "topup": run_topup,
}


class Resumer:
    """Runs again every saga step that is due: after a transient failure or a restart.

    Its first pass, right when it starts, takes every step in progress
    whatever its lease, so sagas cut short by a crash resume at once.
    """

    def __init__(self, deps: Deps, *, interval_s: float) -> None:
        self._deps = deps
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def run_once(self, *, everything: bool = False) -> int:
        """Run every due step once (every step in progress if `everything`); count them."""
        due = await self._deps.store.due(None if everything else self._deps.clock.now_us())
        for item in due:
            await self._resume(item)
        return len(due)

    async def _resume(self, item: Due) -> None:
        caller = Caller(tenant_id=item.tenant_id, client_id=RESUMER_CLIENT_ID)
        try:
            await _RUNNERS[item.kind](item.id, caller=caller, deps=self._deps)
        except Exception:
            log.exception("saga_resume_failed", kind=item.kind, id=item.id)

    async def run(self) -> None:
        """Resume until cancelled."""
        everything = True
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
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
