"""Admission control for money-moving requests: queue a burst, or shed it before any work.

The services behind the gateway take a payment in some tens of milliseconds,
one after the other where it matters (a ledger commit, a SQLite writer). A
burst of hundreds at once used to go down to them all together; each call
then waited behind all the others until its deadline passed and the client
got a 503, although nothing had failed.

:class:`Admission` lets at most `max_in_flight` money-moving requests work at
once in this gateway. Others wait in line (first come, first served) for at
most `max_wait_s`, and at most `max_queue` of them; a request that cannot be
admitted is refused with 429 `overloaded` and a Retry-After *before* it does
anything: no Idempotency-Key claimed, no service called, so a retry with the
same key is a first attempt. An admitted request's service calls may take
what is left of the request's time (see :func:`paymesh.gateway.clients.calls_may_wait_until`):
they wait in the services' queues instead of failing at the shorter
per-call deadline.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from paymesh.gateway.errors import Overloaded
from paymesh.platform.logging import get_logger

__all__ = ["Admission"]

log = get_logger(__name__)


class Admission:
    """A bounded number of requests at work, and a bounded line in front of them."""

    def __init__(self, *, max_in_flight: int, max_queue: int, max_wait_s: float) -> None:
        self.max_in_flight = max_in_flight
        self.max_queue = max_queue
        self.max_wait_s = max_wait_s
        self._slots = asyncio.Semaphore(max_in_flight)
        self._waiting = 0
        # A moving average of how long an admitted request works, for Retry-After.
        self._work_s = 0.1

    @property
    def waiting(self) -> int:
        """Requests in line now."""
        return self._waiting

    @asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        """Hold a place among the requests at work for the block (429 `overloaded` if none
        comes free in time)."""
        if self._slots.locked() and self._waiting >= self.max_queue:
            raise self._overloaded("queue_full")
        self._waiting += 1
        try:
            async with asyncio.timeout(self.max_wait_s):
                await self._slots.acquire()
        except TimeoutError:
            raise self._overloaded("wait_timeout") from None
        finally:
            self._waiting -= 1
        started = time.monotonic()
        try:
            yield
        finally:
            self._slots.release()
            self._work_s += 0.1 * (time.monotonic() - started - self._work_s)

    def _overloaded(self, reason: str) -> Overloaded:
        # Roughly when the line in front of a new request will have been served.
        retry = max(1, math.ceil(self._waiting * self._work_s / self.max_in_flight))
        log.info("admission_refused", reason=reason, waiting=self._waiting, retry_after_s=retry)
        return Overloaded(
            f"the gateway is busy with other payments: retry in {retry} s",
            headers={"Retry-After": str(retry)},
        )
