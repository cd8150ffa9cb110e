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
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from paymesh.contracts.events import Event
from paymesh.payments import domain
from paymesh.payments.bank import SimulatedBank
from paymesh.payments.domain import (
    BankOutcome,
    P2PTransfer,
    Payment,
    Payout,
    Refund,
    Step,
    Topup,
    Transfer,
    Transition,
)
from paymesh.payments.errors import InvalidState, PaymentBusy, RemoteRefusal
from paymesh.payments.events import (
    payment_events,
    payout_events,
    refund_events,
    topup_events,
    transfer_events,
)
from paymesh.payments.ports import Connector, LedgerAccount, LedgerClient, RiskClient
from paymesh.payments.store import Due, PaymentStore
from paymesh.platform.clock import Clock
from paymesh.platform.identity import Caller
from paymesh.platform.logging import get_logger

__all__ = [
    "RESUMER_CLIENT_ID",
    "Deps",
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

T = TypeVar("T")
S = TypeVar("S", Payment, Refund, Topup, Payout, P2PTransfer)

DEFAULT_AUTHORIZATION_TTL_S = 7 * 24 * 3600.0


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
    # The external funding source; by default a bank that always pays at once.
    bank: Connector = field(default_factory=SimulatedBank)
    # An authorisation not captured within this is canceled (its hold voided).
    authorization_ttl_s: float = DEFAULT_AUTHORIZATION_TTL_S


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
        transfers = domain.step_transfers(p)
        if len(transfers) > 1:  # the fee goes to the tenant's revenue account, made on demand
            revenue = LedgerAccount(
                id=domain.revenue_account_id(p.tenant_id, p.currency),
                currency=p.currency,
                code="revenue",
            )
            problem = await _open(deps, caller, revenue)
            if problem:
                return domain.fail_step(p, problem, f"the revenue account: {problem}", now())
        result = domain.batch_result(await deps.ledger.create_transfers(caller, transfers))
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
        [result] = await _with_retries(deps.retry, lambda: _transfers(deps, caller, [transfer]))
    except Exception as exc:
        log.warning("refund_step_postponed", refund_id=r.id, error=repr(exc))
        await _postpone(deps, "refund", r.id, r.step, r.attempts)
        return await deps.store.get_refund(refund_id)
    new, types = domain.settle_refund(r, result, deps.clock.now_us())
    await deps.store.settle_refund(new, refund_events(new, types, deps.clock.now_us()))
    return await deps.store.get_refund(refund_id)


async def run_topup(topup_id: str, *, caller: Caller, deps: Deps) -> Topup | None:
    """Pull the money from the bank, then credit it from the tenant's funding account."""
    found: Topup | None = await _run("topup", topup_id, caller, deps, _topup_step)
    return found


async def run_payout(payout_id: str, *, caller: Caller, deps: Deps) -> Payout | None:
    """Hold the money, have the bank send it, then post (or void) the hold."""
    found: Payout | None = await _run("payout", payout_id, caller, deps, _payout_step)
    return found


async def run_transfer(transfer_id: str, *, caller: Caller, deps: Deps) -> P2PTransfer | None:
    """Move the money between the two accounts if it is still to be done."""
    found: P2PTransfer | None = await _run("transfer", transfer_id, caller, deps, _transfer_step)
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
            await run_payment(p.id, caller=caller, deps=deps)
    return len(expired)


# -- the generic runner of top-ups, payouts and transfers ---------------------------

Outcome = tuple[Any, tuple[str, ...]] | None
StepFn = Callable[[Any, Caller, Deps], Awaitable[Outcome]]
_EVENTS: dict[str, Callable[[Any, tuple[str, ...], int], list[Event]]] = {
    "topup": topup_events,
    "payout": payout_events,
    "transfer": transfer_events,
}


async def _run(kind: str, object_id: str, caller: Caller, deps: Deps, step: StepFn) -> Any:
    """Run the object's recorded steps until none is left or one must wait.

    A step answers the transition it makes, or None when the bank does not
    know yet (the step is asked again later, with backoff). A new wait for
    the bank is left to the Resumer rather than polled inline.
    """
    while True:
        obj = await deps.store.get(kind, object_id)
        if obj is None or obj.step is None:
            return obj
        try:
            outcome = await _with_retries(deps.retry, partial(step, obj, caller, deps))
        except Exception as exc:
            log.warning(f"{kind}_step_postponed", id=obj.id, step=obj.step, error=repr(exc))
            outcome = None
        if outcome is None:
            await _postpone(deps, kind, obj.id, obj.step, obj.attempts)
            return await deps.store.get(kind, object_id)
        new, types = outcome
        now = deps.clock.now_us()
        waiting = new.step is Step.BANK_STATUS and obj.step is not Step.BANK_STATUS
        if waiting:
            delay = domain.retry_delay_s(1, deps.retry.resume_base_s, deps.retry.resume_max_s)
            new = dataclasses.replace(
                new, attempts=1, next_attempt_at_us=now + int(delay * 1_000_000)
            )
        else:
            new = leased(new, deps)
        events = _EVENTS[kind](new, types, now)
        won = await deps.store.save(kind, new, status=obj.status, step=obj.step, events=events)
        if waiting or not won:  # the Resumer asks the bank; or another runner carries on
            return await deps.store.get(kind, object_id)


async def _transfers(deps: Deps, caller: Caller, transfers: list[Transfer]) -> list[str]:
    """The ledger's results; a refusal of the whole call is every transfer's result."""
    try:
        return await deps.ledger.create_transfers(caller, transfers)
    except RemoteRefusal as refusal:
        return [refusal.code] * len(transfers)


async def _open(deps: Deps, caller: Caller, account: LedgerAccount) -> str:
    """Open one of the tenant's own accounts if needed; "" when it is there."""
    try:
        [opened] = await deps.ledger.create_accounts(caller, [account])
    except RemoteRefusal as refusal:
        opened = refusal.code
    return "" if opened in ("ok", "exists") else f"{account.code}_account_{opened}"


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
    problem = await _open(deps, caller, _funding(t.tenant_id, t.currency))
    if problem:
        return domain.settle_topup(t, problem, now())
    [result] = await _transfers(deps, caller, [domain.topup_transfer(t)])
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
        problem = await _open(deps, caller, _funding(p.tenant_id, p.currency))
        if problem:
            return domain.apply_payout_ledger(p, problem, now())
    [result] = await _transfers(deps, caller, [domain.payout_transfer(p)])
    if p.step is Step.VOID and result in _ALREADY_RELEASED:
        result = "ok"
    return domain.apply_payout_ledger(p, result, now())


_ALREADY_RELEASED = ("pending_transfer_expired", "pending_transfer_already_voided")


async def _transfer_step(t: P2PTransfer, caller: Caller, deps: Deps) -> Outcome:
    [result] = await _transfers(deps, caller, [domain.move_transfer(t)])
    return domain.settle_p2p_transfer(t, result, deps.clock.now_us())


_RUNNERS: dict[str, Callable[..., Awaitable[object]]] = {
    "payment": run_payment,
    "refund": run_refund,
    "topup": run_topup,
    "payout": run_payout,
    "transfer": run_transfer,
}


class Resumer:
    """Runs again every saga step that is due: after a transient failure or a restart.

    Its first pass, right when it starts, takes every step in progress
    whatever its lease, so sagas cut short by a crash resume at once. Each
    pass also cancels the authorisations that expired uncaptured.
    """

    def __init__(self, deps: Deps, *, interval_s: float) -> None:
        self._deps = deps
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def run_once(self, *, everything: bool = False) -> int:
        """Run every due step once (every step in progress if `everything`), then cancel
        expired authorisations; count them all."""
        due = await self._deps.store.due(None if everything else self._deps.clock.now_us())
        for item in due:
            await self._resume(item)
        try:
            expired = await expire_authorizations(self._deps)
        except Exception:
            log.exception("authorization_expiry_failed")
            expired = 0
        return len(due) + expired

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
