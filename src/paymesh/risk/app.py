"""Wiring for the risk service: its database, rules (reloaded when the file
changes), features (Redis or the database), gRPC server, outbox relay, the
consumer of payment events, and the sweeper of overdue reviews.

The consumer subscribes in :func:`create` (no I/O), so the bus knows it before
it starts; events it delivers before :meth:`RiskRuntime.start` wait for it.
A rules file that is missing or invalid at start stops :meth:`start` with
:class:`~paymesh.risk.errors.RulesInvalid`: operators must know.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc

from paymesh.contracts.risk.v1 import risk_pb2_grpc
from paymesh.platform.bus import EventBus
from paymesh.platform.clock import Clock, SystemClock
from paymesh.platform.db import Database
from paymesh.platform.health import Check
from paymesh.platform.host import HostedService, ServiceHost
from paymesh.platform.locks import SessionLock, lock_key
from paymesh.platform.logging import get_logger
from paymesh.platform.loops import Periodic
from paymesh.platform.migrations import migrate_database
from paymesh.platform.runtime import Runtime
from paymesh.platform.settings import PlatformSettings
from paymesh.risk import service
from paymesh.risk.api import SERVICE_NAME, RiskServicer
from paymesh.risk.domain import Resolution, RuleSet, amount_limit_rules
from paymesh.risk.errors import RulesInvalid
from paymesh.risk.events import CONSUMER, GROUP, PAYMENTS_TOPIC, payment_events_handler
from paymesh.risk.features import SqlFeatureStore
from paymesh.risk.ports import Deps, FeatureStore
from paymesh.risk.rules import RulesHolder
from paymesh.risk.settings import RiskSettings
from paymesh.risk.store import SqlRiskStore
from paymesh.risk.tables import outbox

__all__ = ["MIGRATIONS", "RiskRuntime", "create", "migrate", "rules_from_settings"]

MIGRATIONS = Path(__file__).parent / "migrations"

log = get_logger(__name__)


async def migrate(settings: PlatformSettings) -> None:
    """Bring the risk database to the latest schema."""
    await migrate_database(settings.section(RiskSettings).database_url, MIGRATIONS, service="risk")


def rules_from_settings(settings: RiskSettings) -> RuleSet:
    """The built-in rule set configured in settings (used without a rules file)."""
    return amount_limit_rules(settings.amount_limits, settings.default_amount_limit)


def _features(settings: RiskSettings, db: Database) -> FeatureStore:
    if settings.redis_url:
        from paymesh.risk.redis_features import RedisFeatureStore

        return RedisFeatureStore(
            settings.redis_url,
            prefix=settings.redis_prefix,
            retention_s=settings.velocity_retention_s,
            timeout_s=settings.redis_timeout_s,
        )
    return SqlFeatureStore(db, consumer=CONSUMER)


class RiskRuntime(HostedService):
    """The running risk service: gRPC server, outbox relay, payment-events consumer,
    rules reloader and review sweeper."""

    name = "risk"

    def __init__(self, settings: PlatformSettings, *, bus: EventBus, clock: Clock) -> None:
        risk = settings.section(RiskSettings)
        self._settings = risk
        super().__init__(
            ServiceHost.serving(self.name, settings, risk, bus=bus, clock=clock, outbox=outbox)
        )
        self._db = self.host.db
        self.rules = RulesHolder(
            risk.rules_file,
            fallback=rules_from_settings(risk),
            clock=clock,
            interval_s=risk.rules_reload_interval_s,
        )
        self.store = SqlRiskStore(self._db, committed=self.host.relay.notify)
        self.features = _features(risk, self._db)
        # SQL velocity windows are read, then written, under in-process locks
        # (locks.VelocityLocks): on PostgreSQL, a second process must not share them.
        self._sole: SessionLock | None = None
        if not risk.redis_url and not self._db.is_sqlite:
            self._sole = SessionLock(self._db, lock_key("risk:sql-velocity"))
        # The SQL features (also when Redis holds the live ones: the payer stats table).
        self.payer_stats = SqlFeatureStore(self._db, consumer=CONSUMER)
        self.deps = Deps(
            store=self.store,
            rules=lambda: self.rules.rules,
            clock=clock,
            features=self.features,
            review_timeout_s=risk.review_timeout_s,
        )
        self._servicer = RiskServicer(self.deps, loaded=lambda: self.rules.loaded)
        self._running = asyncio.Event()
        self.host.consume(
            [PAYMENTS_TOPIC], GROUP, payment_events_handler(self.deps, running=self._running)
        )
        self._sweeper = Periodic("risk-sweep", self._sweep, interval_s=risk.review_sweep_interval_s)

    def _register(self, server: grpc.aio.Server) -> None:
        risk_pb2_grpc.add_RiskServicer_to_server(self._servicer, server)

    async def sweep_once(self) -> int:
        """Resolve overdue reviews with the default and prune old velocity entries."""
        resolution = Resolution(self._settings.review_timeout_resolution)
        done = await service.expire_reviews(resolution, deps=self.deps)
        retention_s = max(
            [self._settings.velocity_retention_s, *(w for _, w in self.rules.rules.needs.windows)]
        )
        clock = self.deps.clock
        await self.features.prune(before_us=clock.now_us() - retention_s * 1_000_000)
        return done

    async def _sweep(self) -> None:
        if self._sole is not None and not await self._sole.held():
            # Lost with a database restart, and taken by another process since.
            log.error("risk_sql_velocity_shared_with_another_process")
        await self.sweep_once()

    async def start(self) -> None:
        """Load the rules (refusing a bad file), bind the gRPC server, start the
        relay, the reloader and the sweeper."""
        try:
            self.rules.load()
        except RulesInvalid as exc:
            log.error("risk_rules_rejected", path=self._settings.rules_file, error=str(exc))
            raise
        if self._sole is not None and not await self._sole.held():
            raise RuntimeError(
                "another risk process uses this database's SQL velocity windows: they are"
                " correct in one process only; give every replica risk.redis_url"
            )
        await self.host.start(self._register, [SERVICE_NAME], self._checks())
        self.store.start()
        self.rules.start()
        self._sweeper.start()
        self._running.set()
        loaded = self.rules.loaded
        log.info(
            "risk_started",
            port=self.port,
            rules_version=loaded.rules.version,
            rules_source=loaded.source,
            features="redis" if self._settings.redis_url else "sql",
        )

    def _checks(self) -> list[Check]:
        checks = self.host.checks(GROUP)
        if self._settings.redis_url:
            from paymesh.risk.redis_features import RedisFeatureStore

            assert isinstance(self.features, RedisFeatureStore)
            checks.append(Check("redis", self.features.ping))
        return checks

    async def stop(self) -> None:
        """Stop consuming and serving, stop the background work, close connections."""
        self._running.clear()
        await self.host.stop_serving()
        await self._sweeper.stop()
        await self.rules.stop()
        await self.store.stop()
        if self._sole is not None:
            await self._sole.release()
        close = getattr(self.features, "close", None)
        if close is not None:
            await close()
        await self.host.close()


def create(settings: PlatformSettings, *, bus: EventBus, clock: Clock | None = None) -> RiskRuntime:
    """Build the risk service from settings (no I/O until start)."""
    return RiskRuntime(settings, bus=bus, clock=clock or SystemClock())


def _check(runtime: RiskRuntime) -> Runtime:  # the app satisfies the Runtime port
    return runtime
