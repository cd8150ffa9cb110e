"""Wiring: the accounts service built from settings (the only place adapters are made)."""

from __future__ import annotations

from pathlib import Path

import grpc

from paymesh.accounts.api import SERVICE_NAME, AccountsServicer
from paymesh.accounts.audit import PeriodicVerify
from paymesh.accounts.groupcommit import GroupCommitStore
from paymesh.accounts.ports import Deps
from paymesh.accounts.service import ExpirySweeper
from paymesh.accounts.settings import AccountsSettings
from paymesh.accounts.store import SqlAccountsStore
from paymesh.accounts.tables import outbox
from paymesh.contracts.accounts.v1 import accounts_pb2_grpc as pb_grpc
from paymesh.platform.bus import EventBus
from paymesh.platform.clock import Clock, SystemClock
from paymesh.platform.db import Database
from paymesh.platform.health import Readiness, database_check, event_bus_check
from paymesh.platform.migrations import upgrade
from paymesh.platform.outbox import OutboxRelay
from paymesh.platform.rpc import GrpcServer
from paymesh.platform.settings import PlatformSettings
from paymesh.platform.tracing import Tracing

__all__ = ["MIGRATIONS", "AccountsRuntime", "create", "migrate"]

MIGRATIONS = Path(__file__).parent / "migrations"


async def migrate(settings: PlatformSettings) -> None:
    """Bring the accounts database to the latest schema."""
    db = Database(settings.section(AccountsSettings).database_url, service="accounts")
    try:
        await upgrade(db, MIGRATIONS)
    finally:
        await db.dispose()


class AccountsRuntime:
    """The running accounts service: gRPC server, outbox relay, expiry sweeper, periodic
    ledger verification."""

    name = "accounts"

    def __init__(
        self, settings: PlatformSettings, *, bus: EventBus, clock: Clock, expiry_interval_s: float
    ) -> None:
        self.db = Database(settings.section(AccountsSettings).database_url, service=self.name)
        self._bus = bus
        self.readiness = Readiness(self.name)
        self.tracing = Tracing.of(settings, self.name)
        # SQLite has one writer, so one worker; on PostgreSQL a second worker
        # decides the next batch while the first waits for its commit.
        ledger = SqlAccountsStore(self.db)
        self.store = GroupCommitStore(ledger, clock, workers=1 if self.db.is_sqlite else 2)
        deps = Deps(self.store, clock)
        servicer = AccountsServicer(deps)

        def register(server: grpc.aio.Server) -> None:
            pb_grpc.add_AccountsServicer_to_server(servicer, server)

        self.server = GrpcServer(
            settings.section(AccountsSettings).listen,
            register,
            [SERVICE_NAME],
            tls=settings.tls,
            interceptors=self.tracing.server_interceptors(),
            service=self.name,
            ready=lambda: self.readiness.ready,
        )
        self.relay = OutboxRelay(self.db, outbox, bus, service=self.name, clock=clock)
        self.sweeper = ExpirySweeper(
            deps, interval_s=expiry_interval_s, on_expired=self.relay.notify
        )
        self.verifier = PeriodicVerify(
            self.db,
            interval_s=settings.section(AccountsSettings).verify_interval_s,
            service=self.name,
            on_head=ledger.chain_head,
        )
        self.port = 0

    async def start(self) -> None:
        """Bind the server, then relay the outbox, sweep expired holds and verify the ledger."""
        self.store.start()
        await self.readiness.start([database_check(self.db), event_bus_check(self._bus)])
        self.port = await self.server.start()
        self.relay.start()
        self.sweeper.start()
        self.verifier.start()

    async def stop(self) -> None:
        """Stop verifying, sweeping and relaying, finish calls in flight, close the database."""
        await self.verifier.stop()
        await self.readiness.stop()
        await self.sweeper.stop()
        await self.server.stop()
        await self.store.stop()
        await self.relay.stop()
        await self.db.dispose()
        await self.tracing.shutdown()


def create(
    settings: PlatformSettings,
    *,
    bus: EventBus,
    clock: Clock | None = None,
    expiry_interval_s: float = 1.0,
) -> AccountsRuntime:
    """Build the accounts service from `settings`; no I/O until start()."""
    return AccountsRuntime(
        settings, bus=bus, clock=clock or SystemClock(), expiry_interval_s=expiry_interval_s
    )
