"""The Resumer: runs again every saga step that is due, and sets the saga gauges."""

from __future__ import annotations

import time

from paymesh.payments import flows
from paymesh.payments.ports import Deps
from paymesh.payments.saga.leases import Lease
from paymesh.payments.saga.runner import RESUMER_CLIENT_ID, expire_authorizations, run
from paymesh.payments.store import Due
from paymesh.platform.identity import Caller
from paymesh.platform.locks import SessionLock
from paymesh.platform.logging import get_logger
from paymesh.platform.loops import Periodic
from paymesh.platform.metrics import SAGA_OLDEST_OPEN_AGE, SAGAS_OPEN

__all__ = ["Resumer"]

log = get_logger(__name__)

SERVICE = "payments"


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
        # The first pass on SQLite takes every step in progress (see above).
        self._everything = liveness is None
        self._loop = Periodic("saga-resumer", self._pass, interval_s=interval_s)
        self._alive = Periodic(
            "payments-liveness", self._keep_alive, interval_s=min(interval_s, 1.0)
        )
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

        One query per pass (:meth:`~paymesh.payments.store.SqlPaymentsStore.open_steps`).
        Every replica reads the same database, so each reports the same numbers.
        """
        found = await self._deps.store.open_steps()
        now = self._deps.clock.now_us()
        oldest = dict.fromkeys(flows.FLOWS, now)
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
            await run(item.kind, item.id, caller=caller, deps=self._deps, lease=lease)
        except Exception:
            log.exception("saga_resume_failed", kind=item.kind, id=item.id)

    async def _pass(self) -> None:
        """One pass of the loop: every step in progress the first time on SQLite."""
        await self.run_once(everything=self._everything)
        self._everything = False

    async def _keep_alive(self) -> None:
        """Hold the liveness lock, taking it again soon after the database comes back,
        whatever a (possibly long) pass of resuming is doing."""
        assert self._liveness is not None
        try:
            await self._liveness.held()
        except Exception as exc:
            log.warning("payments_liveness_unreachable", error=type(exc).__name__)

    def start(self) -> None:
        """Resume in the background, starting now (and keep the liveness lock held)."""
        if self._liveness is not None:
            self._alive.start()
        self._loop.start()

    async def stop(self) -> None:
        """Stop resuming."""
        await self._alive.stop()
        await self._loop.stop()
