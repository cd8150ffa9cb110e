"""Wiring: the accounts service built from settings (the only place adapters are made)."""

from __future__ import annotations

from pathlib import Path

import grpc

from paymesh.accounts.api import SERVICE_NAME, AccountsServicer
from paymesh.accounts.groupcommit import GroupCommitStore
from paymesh.accounts.service import ExpirySweeper
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
from paymesh.platform.settings import Settings

__all__ = ["MIGRATIONS", "AccountsRuntime", "create", "migrate"]

MIGRATIONS = Path(__file__).parent / "migrations"


async def migrate(settings: Settings) -> None:
    """Bring the accounts database to the latest schema."""
    db = Database(settings.accounts.database_url, service="accounts")
    try:
        await upgrade(db, MIGRATIONS)
    finally:
        await db.dispose()


class AccountsRuntime:
    """The running accounts service: gRPC server, outbox relay, expiry sweeper."""

    name = "accounts"

    def __init__(
        self, settings: Settings, *, bus: EventBus, clock: Clock, expiry_interval_s: float
    ) -> None:
        self.db = Database(settings.accounts.database_url, service=self.name)
        self._bus = bus
        self.readiness = Readiness(self.name)
        # SQLite has one writer, so one worker; on PostgreSQL a second worker
        # decides the next batch while the first waits for its commit.
        self.store = GroupCommitStore(
            SqlAccountsStore(self.db), clock, workers=1 if self.db.is_sqlite else 2
        )
        servicer = AccountsServicer(self.store, clock)

        def register(server: grpc.aio.Server) -> None:
            pb_grpc.add_AccountsServicer_to_server(servicer, server)

        self.server = GrpcServer(
            settings.accounts.listen,
            register,
            [SERVICE_NAME],
            tls=settings.tls,
            service=self.name,
            ready=lambda: self.readiness.ready,
        )
        self.relay = OutboxRelay(self.db, outbox, bus, clock=clock)
        self.sweeper = ExpirySweeper(
            self.store, clock, interval_s=expiry_interval_s, on_expired=self.relay.notify
        )
        self.port = 0

    async def start(self) -> None:
        """Bind the server, then relay the outbox and sweep expired holds."""
        self.store.start()
        await self.readiness.start([database_check(self.db), event_bus_check(self._bus)])
        self.port = await self.server.start()
        self.relay.start()
        self.sweeper.start()

    async def stop(self) -> None:
        """Stop sweeping and relaying, finish calls in flight, close the database."""
        await self.readiness.stop()
        await self.sweeper.stop()
        await self.server.stop()
        await self.store.stop()
        await self.relay.stop()
        await self.db.dispose()


def create(
    settings: Settings,
    *,
    bus: EventBus,
    clock: Clock | None = None,
    expiry_interval_s: float = 1.0,
) -> AccountsRuntime:
    """Build the accounts service from `settings`; no I/O until start()."""
    return AccountsRuntime(
        settings, bus=bus, clock=clock or SystemClock(), expiry_interval_s=expiry_interval_s
    )
