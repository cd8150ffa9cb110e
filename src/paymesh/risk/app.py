"""Wiring for the risk service: its database, rules, gRPC server, outbox relay, and
the consumer of payment events that keeps the payers' history features.

The consumer subscribes in :func:`create` (no I/O), so the bus knows it before
it starts; events it delivers before :meth:`RiskRuntime.start` wait for it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc

from paymesh.contracts.events import Event
from paymesh.contracts.risk.v1 import risk_pb2_grpc
from paymesh.platform.bus import EventBus
from paymesh.platform.clock import Clock, SystemClock
from paymesh.platform.db import Database
from paymesh.platform.logging import get_logger
from paymesh.platform.migrations import upgrade
from paymesh.platform.outbox import OutboxRelay
from paymesh.platform.rpc import GrpcServer
from paymesh.platform.runtime import Runtime
from paymesh.platform.settings import RiskSettings, Settings
from paymesh.risk import service
from paymesh.risk.api import SERVICE_NAME, RiskServicer
from paymesh.risk.domain import RuleSet, amount_limit_rules
from paymesh.risk.events import CONSUMER, GROUP, PAYMENTS_TOPIC
from paymesh.risk.store import SqlDecisionStore, SqlPayerStatsStore, outbox

__all__ = ["MIGRATIONS", "RiskRuntime", "create", "migrate", "rules_from_settings"]

MIGRATIONS = Path(__file__).parent / "migrations"

log = get_logger(__name__)


async def migrate(settings: Settings) -> None:
    """Bring the risk database to the latest schema."""
    db = Database(settings.risk.database_url)
    try:
        await upgrade(db, MIGRATIONS)
    finally:
        await db.dispose()


def rules_from_settings(settings: RiskSettings) -> RuleSet:
    """The rule set configured in settings."""
    return amount_limit_rules(settings.amount_limits, settings.default_amount_limit)


class RiskRuntime:
    """The running risk service: gRPC server, outbox relay, payment-events consumer."""

    name = "risk"

    def __init__(self, settings: Settings, *, bus: EventBus, clock: Clock) -> None:
        self._listen = settings.risk.listen
        self._tls = settings.tls
        self._db = Database(settings.risk.database_url)
        self._relay = OutboxRelay(self._db, outbox, bus, clock=clock)
        self._rules = rules_from_settings(settings.risk)
        store = SqlDecisionStore(self._db, committed=self._relay.notify)
        self._servicer = RiskServicer(store=store, rules=lambda: self._rules, clock=clock)
        self._clock = clock
        self.payer_stats = SqlPayerStatsStore(self._db, consumer=CONSUMER)
        self._running = asyncio.Event()
        bus.subscribe(PAYMENTS_TOPIC, GROUP, self._on_payment_event)
        self._server: GrpcServer | None = None
        self.port = 0

    async def _on_payment_event(self, event: Event) -> None:
        # Delivered from the bus's own task; a stopped service never acks (the
        # bus cancels the wait when it stops, so the event is delivered again).
        await self._running.wait()
        await service.record_payment_event(event, store=self.payer_stats, clock=self._clock)

    def _register(self, server: grpc.aio.Server) -> None:
        risk_pb2_grpc.add_RiskServicer_to_server(self._servicer, server)

    async def start(self) -> None:
        """Bind the gRPC server and start relaying the outbox."""
        self._server = GrpcServer(self._listen, self._register, [SERVICE_NAME], tls=self._tls)
        self.port = await self._server.start()
        self._relay.start()
        self._running.set()
        log.info("risk_started", port=self.port, rules_version=self._rules.version)

    async def stop(self) -> None:
        """Stop consuming and serving, stop the relay, close the database."""
        self._running.clear()
        if self._server is not None:
            await self._server.stop()
            self._server = None
        await self._relay.stop()
        await self._db.dispose()


def create(settings: Settings, *, bus: EventBus, clock: Clock | None = None) -> RiskRuntime:
    """Build the risk service from settings (no I/O until start)."""
    return RiskRuntime(settings, bus=bus, clock=clock or SystemClock())


def _check(runtime: RiskRuntime) -> Runtime:  # the app satisfies the Runtime port
    return runtime
