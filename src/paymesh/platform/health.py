"""Readiness: whether a service can serve right now, checked in the background.

Each service names its checks (its database, the event bus, Redis when it uses
one); :class:`Readiness` runs them all every ``interval_s`` seconds, each bounded
by ``timeout_s``, and keeps the answer. Whoever asks (the admin listener's
``/readyz``, gRPC health, the ``paymesh_ready`` gauge) reads that answer: a probe
request never costs a query, and a flood of probes cannot load the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from paymesh.platform.bus import EventBus
from paymesh.platform.db import Database
from paymesh.platform.delivery import describe_error
from paymesh.platform.logging import get_logger
from paymesh.platform.loops import Periodic
from paymesh.platform.metrics import READY

__all__ = [
    "Check",
    "NotReady",
    "Readiness",
    "consumers_check",
    "database_check",
    "event_bus_check",
]

log = get_logger(__name__)

# How often the checks run, and how long one may take before it counts as failed.
INTERVAL_S = 1.0
TIMEOUT_S = 2.0

Probe = Callable[[], Awaitable[None]]


class NotReady(Exception):
    """A check's answer when its dependency answers but cannot serve (the message says why)."""


@dataclass(frozen=True)
class Check:
    """One thing a service needs in order to serve: `probe` raises when it cannot."""

    name: str
    probe: Probe


def database_check(db: Database) -> Check:
    """The service's database answers ``SELECT 1`` on a new connection."""
    return Check("database", db.ping)


def event_bus_check(bus: EventBus) -> Check:
    """The event bus can publish (Kafka: the producer reaches a broker)."""
    return Check("kafka_producer", bus.ping)


def consumers_check(bus: EventBus, *groups: str) -> Check:
    """Every consumer of `groups` runs and has its partitions assigned."""

    async def probe() -> None:
        problems = bus.unready_consumers(*groups)
        if problems:
            raise NotReady("; ".join(problems))

    return Check("consumers", probe)


class Readiness:
    """The cached readiness of one service, refreshed by a background task.

    Made with the service (no I/O) and not ready until :meth:`start` is given the
    checks, once the service has built what they probe; not ready after :meth:`stop`.
    """

    def __init__(
        self, service: str, *, interval_s: float = INTERVAL_S, timeout_s: float = TIMEOUT_S
    ) -> None:
        self.service = service
        self._checks: list[Check] = []
        self._timeout_s = timeout_s
        self._failures: dict[str, str] = {"started": "the service is not started"}
        # start() runs the checks once itself; the loop takes over one interval later.
        self._loop = Periodic(
            f"{service}-readiness", self._refresh_logged, interval_s=interval_s, wait_first=True
        )
        self._gauge = READY.labels(service)
        self._gauge.set(0)

    @property
    def ready(self) -> bool:
        """Whether every check passed last time (False before start and after stop)."""
        return not self._failures

    @property
    def failures(self) -> Mapping[str, str]:
        """The checks that failed last time, and why."""
        return self._failures

    async def _run(self, check: Check) -> str | None:
        try:
            async with asyncio.timeout(self._timeout_s):
                await check.probe()
        except TimeoutError:
            return f"no answer in {self._timeout_s:g} s"
        except NotReady as exc:
            return str(exc)
        except Exception as exc:
            kind, message = describe_error(exc)
            return f"{kind}: {message}" if message else kind
        return None

    async def refresh(self) -> bool:
        """Run every check once (concurrently); keep and return the answer."""
        answers = await asyncio.gather(*(self._run(check) for check in self._checks))
        failures = {c.name: why for c, why in zip(self._checks, answers, strict=True) if why}
        self._set(failures)
        return not failures

    def _set(self, failures: dict[str, str]) -> None:
        before, self._failures = self._failures, failures
        self._gauge.set(0 if failures else 1)
        if failures.keys() != before.keys():  # logged when it changes, not every second
            if failures:
                log.warning("service_not_ready", service=self.service, failures=failures)
            else:
                log.info("service_ready", service=self.service)

    async def start(self, checks: Sequence[Check]) -> None:
        """Check `checks` once (so the first answer is a real one), then keep checking."""
        self._checks = list(checks)
        await self.refresh()
        self._loop.start()

    async def _refresh_logged(self) -> None:
        try:
            await self.refresh()
        except Exception:  # a check that cannot even fail cleanly must not end the loop
            log.exception("readiness_check_failed", service=self.service)

    async def stop(self) -> None:
        """Stop checking; from now on the service says it is not ready (it is stopping)."""
        await self._loop.stop()
        self._failures = {"started": "the service is stopping"}
        self._gauge.set(0)
