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
from paymesh.platform.host import HostedService, ServiceHost
from paymesh.platform.migrations import migrate_database
from paymesh.platform.settings import PlatformSettings

__all__ = ["MIGRATIONS", "AccountsRuntime", "create", "migrate"]

MIGRATIONS = Path(__file__).parent / "migrations"


async def migrate(settings: PlatformSettings) -> None:
    """Bring the accounts database to the latest schema."""
    await migrate_database(
        settings.section(AccountsSettings).database_url, MIGRATIONS, service="accounts"
    )


class AccountsRuntime(HostedService):
    """The running accounts service: gRPC server, outbox relay, expiry sweeper, periodic
    ledger verification."""

    name = "accounts"

    def __init__(
        self, settings: PlatformSettings, *, bus: EventBus, clock: Clock, expiry_interval_s: float
    ) -> None:
        cfg = settings.section(AccountsSettings)
        super().__init__(
            ServiceHost.serving(self.name, settings, cfg, bus=bus, clock=clock, outbox=outbox)
        )
        self.db = self.host.db
        # SQLite has one writer, so one worker; on PostgreSQL a second worker
        # decides the next batch while the first waits for its commit.
        ledger = SqlAccountsStore(self.db)
        self.store = GroupCommitStore(ledger, clock, workers=1 if self.db.is_sqlite else 2)
        deps = Deps(self.store, clock)
        self._servicer = AccountsServicer(deps)
        self.sweeper = ExpirySweeper(
            deps, interval_s=expiry_interval_s, on_expired=self.host.relay.notify
        )
        self.verifier = PeriodicVerify(
            self.db,
            interval_s=cfg.verify_interval_s,
            service=self.name,
            on_head=ledger.chain_head,
        )

    def _register(self, server: grpc.aio.Server) -> None:
        pb_grpc.add_AccountsServicer_to_server(self._servicer, server)

    async def start(self) -> None:
        """Bind the server, then relay the outbox, sweep expired holds and verify the ledger."""
        self.store.start()
        await self.host.start(self._register, [SERVICE_NAME], self.host.checks())
        self.sweeper.start()
        self.verifier.start()

    async def stop(self) -> None:
        """Stop verifying, sweeping and relaying, finish calls in flight, close the database."""
        await self.verifier.stop()
        await self.host.stop_serving()
        await self.sweeper.stop()
        await self.store.stop()
        await self.host.close()


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
