"""What every saga runner shares: the retry policy, the dependencies, leases,
inline retries, backoff, and the guard that makes a given-up step's lookup wait.

See :mod:`paymesh.payments.saga` for how steps run and when they are given up.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from paymesh.payments import domain
from paymesh.payments.bank import SimulatedBank
from paymesh.payments.domain import P2PTransfer, Payment, Payout, Refund, Step, Topup, Transfer
from paymesh.payments.errors import RemoteRefusal
from paymesh.payments.ports import Connector, LedgerAccount, LedgerClient, RiskClient
from paymesh.payments.store import PaymentStore
from paymesh.platform.clock import Clock
from paymesh.platform.identity import Caller

__all__ = [
    "DEFAULT_AUTHORIZATION_TTL_S",
    "Deps",
    "Lease",
    "RetryPolicy",
    "claim",
    "leased",
    "ledger_results",
    "open_account",
    "past_deadline",
    "postpone",
    "wait_to_settle",
    "with_retries",
]

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
    # A step still failing transiently this long after it was first recorded is given up
    # safely (see the module docstring); compensations and lookups never are.
    step_deadline_s: float = 15 * 60.0
    # How long after a step is given up its transfer's fate may be asked: more than one
    # inline run of the step lasts (attempts x (gRPC deadline + wait)).
    settle_s: float = 30.0


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


def leased(obj: S, deps: Deps, *, after: Step | None = None) -> S:
    """`obj` with its recorded step left to the current runner for a while.

    A step other than `after` (the step the object was at) is new: its deadline
    starts now.
    """
    if obj.step is None:
        return obj
    now = deps.clock.now_us()
    started = obj.step_started_at_us if obj.step is after else now
    until = now + int(deps.retry.lease_s * 1_000_000)
    return dataclasses.replace(obj, next_attempt_at_us=until, step_started_at_us=started)


# How a runner comes to a saga object's step: it recorded the step itself and holds
# its lease ("held"); it must claim the lease first, and leave the step to the live
# runner holding it ("claim"); or it takes the lease whatever it says ("take": the
# embedded shape's first pass after a restart, when no other runner can exist).
Lease = Literal["held", "claim", "take"]


async def claim(kind: str, obj: Any, deps: Deps, lease: Lease) -> bool:
    """Whether this runner may run `obj`'s step now (claiming its lease if need be)."""
    if lease == "held":
        return True
    now = deps.clock.now_us()
    until = now + int(deps.retry.lease_s * 1_000_000)
    return await deps.store.claim(
        kind, obj.id, obj.step, now_us=now, until_us=until, take=lease == "take"
    )


def _settles_first(obj: Any) -> bool:
    """True for a step that may only run `settle_s` after it began: a lookup, a given-up void."""
    return bool(
        obj.step is Step.LOOKUP or (obj.step is Step.VOID and obj.failure_code == domain.TIMEOUT)
    )


async def wait_to_settle(kind: str, obj: Any, deps: Deps) -> bool:
    """Postpone `obj` until its step may run, if it may not yet; True when postponed."""
    if not _settles_first(obj):
        return False
    ready = obj.step_started_at_us + int(deps.retry.settle_s * 1_000_000)
    if deps.clock.now_us() >= ready:
        return False
    await deps.store.postpone(
        kind, obj.id, obj.step, attempts=obj.attempts, next_attempt_at_us=ready
    )
    return True


def past_deadline(obj: Any, deps: Deps) -> bool:
    return domain.step_deadline_passed(obj, deps.clock.now_us(), deps.retry.step_deadline_s)


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, Exception) and not isinstance(exc, RemoteRefusal)


async def with_retries(policy: RetryPolicy, call: Callable[[], Awaitable[T]]) -> T:
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


async def postpone(deps: Deps, kind: str, object_id: str, step: Step, attempts: int) -> None:
    attempts += 1
    delay = domain.retry_delay_s(attempts, deps.retry.resume_base_s, deps.retry.resume_max_s)
    await deps.store.postpone(
        kind,
        object_id,
        step,
        attempts=attempts,
        next_attempt_at_us=deps.clock.now_us() + int(delay * 1_000_000),
    )


async def ledger_results(deps: Deps, caller: Caller, transfers: list[Transfer]) -> list[str]:
    """The ledger's results; a refusal of the whole call is every transfer's result."""
    try:
        return await deps.ledger.create_transfers(caller, transfers)
    except RemoteRefusal as refusal:
        return [refusal.code] * len(transfers)


async def open_account(deps: Deps, caller: Caller, account: LedgerAccount) -> str:
    """Open one of the tenant's own accounts if needed; "" when it is there."""
    try:
        [opened] = await deps.ledger.create_accounts(caller, [account])
    except RemoteRefusal as refusal:
        opened = refusal.code
    return "" if opened in ("ok", "exists") else f"{account.code}_account_{opened}"
