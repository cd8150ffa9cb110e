"""Wiring for the webhooks service: its database, gRPC server, outbox relay, the
consumer of every public event and the delivery worker.

The consumer subscribes in :func:`create` (no I/O), so the bus knows it before
it starts; events it delivers before :meth:`WebhooksRuntime.start` wait for it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path

import grpc

from paymesh.contracts.events import Event
from paymesh.contracts.webhooks.v1 import webhooks_pb2_grpc
from paymesh.platform.bus import EventBus
from paymesh.platform.clock import Clock, SystemClock
from paymesh.platform.db import Database
from paymesh.platform.health import Readiness, consumers_check, database_check, event_bus_check
from paymesh.platform.logging import get_logger
from paymesh.platform.migrations import upgrade
from paymesh.platform.outbox import OutboxRelay
from paymesh.platform.rpc import GrpcServer
from paymesh.platform.runtime import Runtime
from paymesh.platform.settings import PlatformSettings
from paymesh.platform.tracing import Tracing
from paymesh.webhooks import service
from paymesh.webhooks.api import SERVICE_NAME, WebhooksServicer
from paymesh.webhooks.domain import RetryPolicy
from paymesh.webhooks.events import CONSUMED_TOPICS, CONSUMER, GROUP
from paymesh.webhooks.sealing import SecretBox
from paymesh.webhooks.service import EndpointPolicy
from paymesh.webhooks.settings import WebhooksSettings
from paymesh.webhooks.store import SqlWebhookStore
from paymesh.webhooks.tables import outbox
from paymesh.webhooks.transport import Resolver, new_client, system_resolver
from paymesh.webhooks.worker import DeliveryWorker, WorkerConfig

__all__ = ["MIGRATIONS", "WebhooksRuntime", "create", "migrate"]

MIGRATIONS = Path(__file__).parent / "migrations"

log = get_logger(__name__)


async def migrate(settings: PlatformSettings) -> None:
    """Bring the webhooks database to the latest schema."""
    db = Database(settings.section(WebhooksSettings).database_url, service="webhooks")
    try:
        await upgrade(db, MIGRATIONS)
    finally:
        await db.dispose()


class WebhooksRuntime:
    """The running webhooks service: gRPC server, outbox relay, consumer, delivery worker."""

    name = "webhooks"

    def __init__(
        self,
        settings: PlatformSettings,
        *,
        bus: EventBus,
        clock: Clock,
        resolver: Resolver | None = None,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        cfg = settings.section(WebhooksSettings)
        self._listen = cfg.listen
        self._allow_private = cfg.allow_private_addresses
        self._tls = settings.tls
        self._clock = clock
        self._db = Database(cfg.database_url, service=self.name)
        self.readiness = Readiness(self.name)
        self.tracing = Tracing.of(settings, self.name)
        self._relay = OutboxRelay(
            self._db, outbox, bus, service=self.name, clock=clock, name="webhooks-outbox"
        )
        self.store = SqlWebhookStore(
            self._db,
            consumer=CONSUMER,
            committed=self._relay.notify,
            deliveries_added=self._deliveries_added,
        )
        box = SecretBox(cfg.secret_key.get_secret_value())
        policy = EndpointPolicy(
            environment=settings.environment,
            allow_private=cfg.allow_private_addresses,
            rotation_grace_s=cfg.rotation_grace_s,
        )
        self._servicer = WebhooksServicer(
            store=self.store,
            box=box,
            policy=policy,
            clock=clock,
            resolver=resolver or system_resolver,
        )
        self._client = new_client(
            allow_private=cfg.allow_private_addresses,
            timeout_s=cfg.request_timeout_s,
            resolver=resolver,
        )
        self.worker = DeliveryWorker(
            self.store,
            box=box,
            client=self._client,
            config=WorkerConfig(
                policy=RetryPolicy(
                    base_s=cfg.retry_base_s,
                    max_delay_s=cfg.retry_max_delay_s,
                    window_s=cfg.retry_window_s,
                    disable_after_s=cfg.disable_after_s,
                ),
                request_timeout_s=cfg.request_timeout_s,
                max_response_bytes=cfg.max_response_bytes,
                max_in_flight=cfg.max_in_flight,
                max_in_flight_per_endpoint=cfg.max_in_flight_per_endpoint,
                poll_interval_s=cfg.poll_interval_s,
                retention_s=cfg.retention_s,
            ),
            clock=clock,
            jitter=jitter,
            tracing=self.tracing,
        )
        self._running = asyncio.Event()
        self._bus = bus
        for topic in CONSUMED_TOPICS:
            bus.subscribe(
                topic, GROUP, self.tracing.consumer(topic, GROUP, self._on_event), service=self.name
            )
        self._server: GrpcServer | None = None
        self.port = 0

    def _deliveries_added(self) -> None:
        self.worker.notify()

    async def _on_event(self, event: Event) -> None:
        # Delivered from the bus's own task; a stopped service never acks (the
        # bus cancels the wait when it stops, so the event is delivered again).
        await self._running.wait()
        await service.record_event(event, store=self.store, clock=self._clock)

    def _register(self, server: grpc.aio.Server) -> None:
        webhooks_pb2_grpc.add_WebhooksServicer_to_server(self._servicer, server)

    async def start(self) -> None:
        """Bind the gRPC server, start relaying the outbox and delivering."""
        await self.readiness.start(
            [
                database_check(self._db),
                event_bus_check(self._bus),
                consumers_check(self._bus, GROUP),
            ]
        )
        self._server = GrpcServer(
            self._listen,
            self._register,
            [SERVICE_NAME],
            tls=self._tls,
            service=self.name,
            ready=lambda: self.readiness.ready,
            interceptors=self.tracing.server_interceptors(),
        )
        self.port = await self._server.start()
        self._relay.start()
        self.worker.start()
        self._running.set()
        log.info("webhooks_started", port=self.port)
        if self._allow_private:
            # An operator setting for development: merchants' URLs may reach our network.
            log.warning("webhooks_private_addresses_allowed")

    async def stop(self) -> None:
        """Stop consuming, serving and delivering; stop the relay; close the database."""
        await self.readiness.stop()
        self._running.clear()
        if self._server is not None:
            await self._server.stop()
            self._server = None
        await self.worker.stop()
        await self._client.aclose()
        await self._relay.stop()
        await self._db.dispose()
        await self.tracing.shutdown()


def create(
    settings: PlatformSettings,
    *,
    bus: EventBus,
    clock: Clock | None = None,
    resolver: Resolver | None = None,
    jitter: Callable[[], float] = random.random,
) -> WebhooksRuntime:
    """Build the webhooks service from settings (no I/O until start).

    `resolver` and `jitter` are for tests: a DNS resolver to check addresses
    with (when endpoints are made and before each delivery), and the source of
    retry jitter in [0, 1).
    """
    return WebhooksRuntime(
        settings, bus=bus, clock=clock or SystemClock(), resolver=resolver, jitter=jitter
    )


def _check(runtime: WebhooksRuntime) -> Runtime:  # the app satisfies the Runtime port
    return runtime
