"""Wiring: the payments service built from settings (the only place real adapters are made).

``create`` does no I/O; ``start`` opens the channels to accounts and risk,
binds the gRPC server, and starts the outbox relay and the saga Resumer
(which resumes every saga a crash left unfinished — at once on SQLite, as
soon as the crashed process's liveness lock is gone on PostgreSQL, where
replicas run side by side — and whose every pass cancels authorisations
that expired uncaptured; a step failing
past ``settings.payments.step_deadline_s`` is given up safely, see
:mod:`paymesh.payments.saga`). The bank behind
top-ups and payouts is the simulated bank, configured by
``settings.payments.bank_*``.

The consumer of risk's review resolutions (:mod:`paymesh.payments.events`)
subscribes in ``create`` (no I/O), so the bus knows it before it starts;
events it delivers before ``start`` wait for it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import grpc

from paymesh.contracts.payments.v1.payments_pb2_grpc import add_PaymentsServicer_to_server
from paymesh.payments.adapters import GrpcLedgerClient, GrpcRiskClient
from paymesh.payments.api import SERVICE_NAME, servicer
from paymesh.payments.bank import SimulatedBank
from paymesh.payments.domain.reconciliation import Tolerance
from paymesh.payments.events import GROUP, TOPIC, review_events_handler
from paymesh.payments.saga import Deps, Resumer, RetryPolicy
from paymesh.payments.settings import PaymentsSettings
from paymesh.payments.settlement import run_due_schedules
from paymesh.payments.store import LIVENESS_LOCK, SqlPaymentsStore, outbox
from paymesh.platform.bus import EventBus
from paymesh.platform.clock import Clock, SystemClock
from paymesh.platform.host import HostedService, ServiceHost
from paymesh.platform.locks import SessionLock
from paymesh.platform.logging import get_logger
from paymesh.platform.loops import Periodic
from paymesh.platform.migrations import migrate_database
from paymesh.platform.rpc import open_channel
from paymesh.platform.settings import PlatformSettings

__all__ = ["MIGRATIONS", "PaymentsRuntime", "create", "migrate"]

MIGRATIONS = Path(__file__).parent / "migrations"

log = get_logger(__name__)


async def migrate(settings: PlatformSettings) -> None:
    """Bring the payments database to the latest schema."""
    await migrate_database(
        settings.section(PaymentsSettings).database_url, MIGRATIONS, service="payments"
    )


class PaymentsRuntime(HostedService):
    """The running payments service."""

    name = "payments"

    def __init__(
        self,
        settings: PlatformSettings,
        bus: EventBus,
        clock: Clock,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._retry = retry or RetryPolicy()
        own = settings.section(PaymentsSettings)
        super().__init__(
            ServiceHost.serving(self.name, settings, own, bus=bus, clock=clock, outbox=outbox)
        )
        self.db = self.host.db
        self.relay = self.host.relay
        # PostgreSQL: replicas may run side by side; this one's steps carry its owner id,
        # and its liveness lock tells the others it is alive (see Resumer).
        self._liveness: SessionLock | None = None
        self.store = SqlPaymentsStore(self.db, on_commit=self.relay.notify)
        if not self.db.is_sqlite:
            self._liveness = SessionLock(self.db, LIVENESS_LOCK, self.store.owner)
        self._channels: list[grpc.aio.Channel] = []
        self.resumer: Resumer | None = None
        # Tenants' settlement schedules (paymesh.payments.settlement.run_due_schedules).
        self._schedules: Periodic | None = None
        self._deps: Deps | None = None
        self._running = asyncio.Event()
        self.host.consume(
            [TOPIC], GROUP, review_events_handler(self._started, running=self._running)
        )

    def _started(self) -> Deps:
        assert self._deps is not None, "the service has not started"
        return self._deps

    async def start(self) -> None:
        """Open the channels, serve, relay the outbox and resume unfinished sagas."""
        s = self._settings
        own = s.section(PaymentsSettings)
        accounts = open_channel(s.peer("accounts").target, s.tls, service=self.name)
        risk = open_channel(s.peer("risk").target, s.tls, service=self.name)
        self._channels = [accounts, risk]
        deps = Deps(
            store=self.store,
            ledger=GrpcLedgerClient(accounts, deadline_s=s.rpc_deadline_s),
            risk=GrpcRiskClient(risk, deadline_s=s.rpc_deadline_s),
            clock=self._clock,
            retry=_retry_policy(self._retry, s),
            bank=SimulatedBank(
                latency_s=own.bank_latency_s,
                failure_rate=own.bank_failure_rate,
                timeout_rate=own.bank_timeout_rate,
            ),
            authorization_ttl_s=own.authorization_ttl_s,
            reconciliation_tolerance=Tolerance(
                amount=own.reconciliation_amount_tolerance,
                days=own.reconciliation_date_tolerance_days,
            ),
        )
        self._deps = deps
        # Alive before the first step is recorded under this owner id.
        if self._liveness is not None and not await self._liveness.held():
            raise RuntimeError("another payments process holds this one's liveness lock")
        api = servicer(deps)
        await self.host.start(
            lambda server: add_PaymentsServicer_to_server(api, server),
            [SERVICE_NAME],
            self.host.checks(GROUP),
        )
        self.resumer = Resumer(deps, interval_s=own.resume_interval_s, liveness=self._liveness)
        self.resumer.start()
        self._schedules = Periodic(
            "settlement_schedule",
            lambda: run_due_schedules(deps, self._clock.now_us()),
            interval_s=own.settlement_schedule_interval_s,
        )
        self._schedules.start()
        self._running.set()
        log.info("payments_started", port=self.port)

    async def stop(self) -> None:
        """Stop serving and background work; close channels and the database."""
        await self.host.stop_serving()
        self._running.clear()
        if self.resumer is not None:
            await self.resumer.stop()
            self.resumer = None
        if self._schedules is not None:
            await self._schedules.stop()
            self._schedules = None
        if self._liveness is not None:
            await self._liveness.release()
        for channel in self._channels:
            await channel.close()
        self._channels = []
        await self.host.close()


def _retry_policy(retry: RetryPolicy, s: PlatformSettings) -> RetryPolicy:
    """`retry` with the settings' step deadline, and a settle time longer than one inline
    run of a step can last (every attempt bounded by the gRPC deadline)."""
    inline_run_s = retry.inline_attempts * (s.rpc_deadline_s + retry.inline_wait_max_s)
    return dataclasses.replace(
        retry,
        step_deadline_s=s.section(PaymentsSettings).step_deadline_s,
        settle_s=max(retry.settle_s, inline_run_s + s.rpc_deadline_s),
    )


def create(
    settings: PlatformSettings, *, bus: EventBus, clock: Clock | None = None
) -> PaymentsRuntime:
    """The payments service, ready to start."""
    return PaymentsRuntime(settings, bus, clock or SystemClock())
