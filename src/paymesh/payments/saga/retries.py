"""Retries: a step tried inline a few times, then backed off on its row; its deadline;
and the guard that makes a given-up step's lookup wait (see the package docstring)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from paymesh.payments import domain
from paymesh.payments.domain import Step
from paymesh.payments.errors import RemoteRefusal
from paymesh.payments.ports import Deps, RetryPolicy

__all__ = ["past_deadline", "postpone", "wait_to_settle", "with_retries"]

T = TypeVar("T")


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, Exception) and not isinstance(exc, RemoteRefusal)


async def with_retries(policy: RetryPolicy, call: Callable[[], Awaitable[T]]) -> T:
    """`call`'s answer, retrying a transient failure inline with backoff (not a refusal)."""
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
    """Record one more failed run of `step`: the Resumer tries again after a backoff."""
    attempts += 1
    delay = domain.retry_delay_s(attempts, deps.retry.resume_base_s, deps.retry.resume_max_s)
    await deps.store.postpone(
        kind,
        object_id,
        step,
        attempts=attempts,
        next_attempt_at_us=deps.clock.now_us() + int(delay * 1_000_000),
    )


def past_deadline(obj: Any, deps: Deps) -> bool:
    """Whether `obj`'s step was first recorded ``step_deadline_s`` ago or more."""
    return domain.step_deadline_passed(obj, deps.clock.now_us(), deps.retry.step_deadline_s)


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
