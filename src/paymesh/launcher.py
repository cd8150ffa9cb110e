"""Compose services into a running platform: all of them (``paymesh up``) or one
(``paymesh serve <service>``). Tests start the embedded platform through here too.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import DBAPIError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from paymesh.contracts.events import TOPIC_ACCOUNTS, TOPIC_PAYMENTS, TOPIC_RISK, TOPIC_WEBHOOKS
from paymesh.platform.admin import AdminServer
from paymesh.platform.bus import EventBus, InProcessBus
from paymesh.platform.clock import Clock
from paymesh.platform.delivery import DeliveryPolicy
from paymesh.platform.logging import get_logger
from paymesh.platform.runtime import Runtime
from paymesh.settings import Settings

if TYPE_CHECKING:
    from paymesh.platform.kafka import KafkaBus

__all__ = ["SERVICES", "Platform", "app_module", "delivery_policy", "make_bus", "make_kafka_bus"]

log = get_logger(__name__)

# Start order: what others call comes first; the gateway opens the door last.
SERVICES: tuple[str, ...] = ("accounts", "risk", "payments", "webhooks", "gateway")


def make_bus(settings: Settings) -> EventBus:
    """Kafka when bootstrap servers are configured (distributed), else in-process."""
    k = settings.kafka
    if not k.bootstrap_servers:
        return InProcessBus(
            policy=delivery_policy(settings), dead_letters=settings.var_dir / "dead-letters.jsonl"
        )
    return make_kafka_bus(settings)


def delivery_policy(settings: Settings) -> DeliveryPolicy:
    """The retry, dead-letter and restart policy of both buses (the kafka settings)."""
    k = settings.kafka
    return DeliveryPolicy(
        max_attempts=k.max_attempts,
        backoff_s=k.retry_backoff_s,
        backoff_max_s=k.retry_backoff_max_s,
        restart_backoff_s=k.restart_backoff_s,
    )


def make_kafka_bus(settings: Settings) -> KafkaBus:
    """The Kafka bus the settings describe (bootstrap_servers must be set)."""
    from paymesh.platform.kafka import KafkaBus, KafkaOptions

    k = settings.kafka
    return KafkaBus(
        KafkaOptions(
            bootstrap_servers=k.bootstrap_servers,
            partitions=k.partitions,
            session_timeout_ms=k.session_timeout_ms,
            max_poll_interval_ms=k.max_poll_interval_ms,
            namespace=k.namespace,
            policy=delivery_policy(settings),
        )
    )


async def _ensure_topics(bus: EventBus) -> None:
    """On Kafka, create every topic of the contracts before anyone publishes.

    A process that only publishes (``paymesh serve payments``) subscribes to
    nothing, so its bus would otherwise never create the topic it writes to.
    """
    if isinstance(bus, InProcessBus):
        return  # the embedded shape: no need to import confluent-kafka
    from paymesh.platform.kafka import KafkaBus

    if isinstance(bus, KafkaBus):
        await bus.ensure_topics(TOPIC_PAYMENTS, TOPIC_ACCOUNTS, TOPIC_RISK, TOPIC_WEBHOOKS)


def app_module(service: str) -> ModuleType:
    """``paymesh.<service>.app``: the wiring of one service."""
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
    return importlib.import_module(f"paymesh.{service}.app")


@dataclass
class Platform:
    """Some or all services of paymesh, sharing one event bus, with their admin listeners
    (/metrics, /healthz, /readyz): one per distinct ``<service>.admin_listen``, so the
    embedded platform's five services share one."""

    settings: Settings
    services: Sequence[str] = SERVICES
    bus: EventBus | None = None
    clock: Clock | None = None
    runtimes: list[Runtime] = field(default_factory=list)
    admin: list[AdminServer] = field(default_factory=list)

    async def migrate(self) -> None:
        """Bring every service's database to its newest schema."""
        for name in self.services:
            await app_module(name).migrate(self.settings)

    async def _migrate_when_reachable(self) -> None:
        """:meth:`migrate`, retried while a database cannot be reached (bounded by
        ``settings.startup_timeout_s``)."""
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type((OSError, DBAPIError)),
            wait=wait_exponential(multiplier=0.2, max=2),
            stop=stop_after_delay(self.settings.startup_timeout_s),
            before_sleep=lambda state: log.warning(
                "database_unreachable_at_start",
                error=repr(state.outcome.exception() if state.outcome else None),
            ),
            reraise=True,
        ):
            with attempt:
                await self.migrate()

    def __post_init__(self) -> None:
        if self.bus is None:
            self.bus = make_bus(self.settings)

    def _admin_listen(self, service: str) -> str:
        listen: str = getattr(self.settings, service).admin_listen
        return listen

    async def _start_admin(self) -> None:
        """Open the admin listeners first: /healthz answers (and /readyz says "not
        started") while the databases are waited for and migrated."""
        by_address: dict[str, list[str]] = {}
        for name in self.services:
            if listen := self._admin_listen(name):
                by_address.setdefault(listen, []).append(name)
        for listen, names in by_address.items():
            server = AdminServer(listen, names)
            await server.start()
            self.admin.append(server)

    def admin_port(self, service: str) -> int | None:
        """The port of the admin listener reporting `service` (None: it has none)."""
        for server in self.admin:
            if service in server.services:
                return server.port
        return None

    async def start(self) -> None:
        """Open the admin listeners, migrate, then start each service in order; on
        failure stop what started."""
        self.settings.check_production(self.services)
        try:
            await self._start_admin()
            await self._migrate_when_reachable()
        except BaseException:
            await self._stop_admin()
            raise
        assert self.bus is not None
        # Build every service first (no I/O): consumers subscribe while being
        # built, so the bus starts knowing every subscription (and creates the
        # topics they need) instead of learning of them after it started.
        created: list[tuple[str, Runtime]] = [
            (name, app_module(name).create(self.settings, bus=self.bus, clock=self.clock))
            for name in self.services
        ]
        try:
            # The bus before the services: relays publish as soon as theirs starts.
            await self.bus.start()
            await _ensure_topics(self.bus)
            for name, runtime in created:
                await runtime.start()
                self.runtimes.append(runtime)
                # /readyz follows it once it started (its server is bound by now).
                for server in self.admin:
                    if name in server.services:
                        server.attach(runtime.readiness)
                log.info("service_started", service=name)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop every started service, the gateway first, then the bus."""
        while self.runtimes:
            runtime = self.runtimes.pop()
            try:
                await runtime.stop()
            except Exception:
                log.exception("service_stop_failed", service=runtime.name)
        if self.bus is not None:
            await self.bus.stop()
        await self._stop_admin()
        log.info("platform_stopped")

    async def _stop_admin(self) -> None:
        while self.admin:
            await self.admin.pop().stop()

    def runtime(self, name: str) -> Any:
        """The running service called `name`."""
        for runtime in self.runtimes:
            if runtime.name == name:
                return runtime
        raise KeyError(name)

    async def serve_forever(self, stop: asyncio.Event) -> None:
        """Start, wait for `stop`, stop."""
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()


def credentials_path(settings: Settings) -> Path:
    """Where ``paymesh up`` keeps the demo credentials."""
    return settings.var_dir / "demo-credentials.json"
