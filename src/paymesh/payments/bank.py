"""A simulated bank: the :class:`~paymesh.payments.ports.Connector` of the embedded shape.

It decides each reference's outcome once (failing ``failure_rate`` of the
requests with ``bank_declined``) and remembers it, so asking again with the
same reference moves no more money and ``status`` always tells the truth.
With probability ``timeout_rate`` it loses its answer: the caller gets
``unknown`` although the outcome is decided, as a real bank's timeout does.
Tests inject a seeded :class:`random.Random`, or force the next outcomes.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from paymesh.payments.domain import BankOutcome, BankResult

__all__ = ["DECLINED", "UNKNOWN_REFERENCE", "BankRequest", "SimulatedBank"]

DECLINED = "bank_declined"
UNKNOWN_REFERENCE = "unknown_reference"


@dataclass(frozen=True)
class BankRequest:
    """A request the bank received, by reference."""

    kind: str  # "pull" or "push"
    account: str
    amount: int
    currency: str


class SimulatedBank:
    """A bank in memory with configurable latency, failures and lost answers."""

    def __init__(
        self,
        *,
        latency_s: float = 0.0,
        failure_rate: float = 0.0,
        timeout_rate: float = 0.0,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._latency_s = latency_s
        self._failure_rate = failure_rate
        self._timeout_rate = timeout_rate
        # Not for secrets: it only decides simulated outcomes.
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._forced: deque[str] = deque()
        self.requests: dict[str, BankRequest] = {}
        self.outcomes: dict[str, BankResult] = {}
        # Every call, in order: ("pull" | "push" | "status", ref).
        self.calls: list[tuple[str, str]] = []

    def force(self, *outcomes: str) -> None:
        """Decide the next new requests: "succeeded", "failed" or "timeout" (answer lost)."""
        self._forced.extend(outcomes)

    def moved(self, kind: str, account: str) -> int:
        """The money that really moved for `account` by `kind` ("pull" or "push")."""
        return sum(
            r.amount
            for ref, r in self.requests.items()
            if r.kind == kind
            and r.account == account
            and self.outcomes[ref].outcome is BankOutcome.SUCCEEDED
        )

    async def pull(self, ref: str, account: str, amount: int, currency: str) -> BankResult:
        """Take money from the account holder's bank account (a top-up)."""
        return await self._request("pull", ref, BankRequest("pull", account, amount, currency))

    async def push(self, ref: str, account: str, amount: int, currency: str) -> BankResult:
        """Send money to the account holder's bank account (a payout)."""
        return await self._request("push", ref, BankRequest("push", account, amount, currency))

    async def status(self, ref: str) -> BankResult:
        """The true outcome of `ref` (failed with unknown_reference if it never arrived)."""
        self.calls.append(("status", ref))
        await self._wait()
        return self.outcomes.get(ref, BankResult(BankOutcome.FAILED, UNKNOWN_REFERENCE))

    async def _request(self, kind: str, ref: str, request: BankRequest) -> BankResult:
        self.calls.append((kind, ref))
        await self._wait()
        known = self.outcomes.get(ref)
        if known is not None:
            return known
        forced = self._forced.popleft() if self._forced else ""
        failed = forced == "failed" or (not forced and self._rng.random() < self._failure_rate)
        truth = (
            BankResult(BankOutcome.FAILED, DECLINED)
            if failed
            else BankResult(BankOutcome.SUCCEEDED)
        )
        self.requests[ref] = request
        self.outcomes[ref] = truth
        lost = forced == "timeout" or (not forced and self._rng.random() < self._timeout_rate)
        return BankResult(BankOutcome.UNKNOWN) if lost else truth

    async def _wait(self) -> None:
        if self._latency_s > 0:
            await self._sleep(self._latency_s)
