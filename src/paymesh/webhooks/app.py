"""Wiring for the webhooks service: its database, gRPC server, outbox relay, the
consumer of every public event and the delivery worker.

The consumer subscribes in :func:`create` (no I/O), so the bus knows it before
it starts; events it delivers before :meth:`WebhooksRuntime.start` wait for it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import grpc

from paymesh.contracts.webhooks.v1 import webhooks_pb2_grpc
from paymesh.platform.bus import EventBus
from paymesh.platform.clock import Clock, SystemClock
from paymesh.platform.host import HostedService, ServiceHost
from paymesh.platform.logging import get_logger
from paymesh.platform.migrations import migrate_database
from paymesh.platform.runtime import Runtime
from paymesh.platform.settings import PlatformSettings
from paymesh.webhooks.api import SERVICE_NAME, WebhooksServicer
from paymesh.webhooks.domain import RetryPolicy
from paymesh.webhooks.events import CONSUMED_TOPICS, CONSUMER, GROUP, Consumer
from paymesh.webhooks.ports import Deps, EndpointPolicy
from paymesh.webhooks.sealing import SecretBox
from paymesh.webhooks.settings import WebhooksSettings
from paymesh.webhooks.store import SqlWebhooksStore
from paymesh.webhooks.tables import outbox
from paymesh.webhooks.transport import Resolver, new_client, system_resolver
from paymesh.webhooks.worker import DeliveryWorker, WorkerConfig

__all__ = ["MIGRATIONS", "WebhooksRuntime", "create", "migrate"]

MIGRATIONS = Path(__file__).parent / "migrations"

log = get_logger(__name__)


async def migrate(settings: PlatformSettings) -> None:
    """Bring the webhooks database to the latest schema."""
    await migrate_database(
        settings.section(WebhooksSettings).database_url, MIGRATIONS, service="webhooks"
    )


def _worker_config(settings: PlatformSettings) -> WorkerConfig:
    cfg = settings.section(WebhooksSettings)
    return WorkerConfig(
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
    )


class WebhooksRuntime(HostedService):
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
        self._allow_private = cfg.allow_private_addresses
        super().__init__(
            ServiceHost.serving(
                self.name,
                settings,
                cfg,
                bus=bus,
                clock=clock,
                outbox=outbox,
                relay_name="webhooks-outbox",
            )
        )
        self.store = SqlWebhooksStore(
            self.host.db,
            consumer=CONSUMER,
            committed=self.host.relay.notify,
            deliveries_added=self._deliveries_added,
        )
        box = SecretBox(cfg.secret_key.get_secret_value())
        self.deps = Deps(
            store=self.store,
            box=box,
            policy=EndpointPolicy(
                environment=settings.environment,
                allow_private=cfg.allow_private_addresses,
                rotation_grace_s=cfg.rotation_grace_s,
            ),
            clock=clock,
            resolver=resolver or system_resolver,
        )
        self._servicer = WebhooksServicer(self.deps)
        self._client = new_client(
            allow_private=cfg.allow_private_addresses,
            timeout_s=cfg.request_timeout_s,
            resolver=resolver,
        )
        self.worker = DeliveryWorker(
            self.store,
            box=box,
            client=self._client,
            config=_worker_config(settings),
            clock=clock,
            jitter=jitter,
            tracing=self.tracing,
        )
        self._consumer = Consumer(self.deps)
        self.host.consume(CONSUMED_TOPICS, GROUP, self._consumer.handle)

    def _deliveries_added(self) -> None:
        self.worker.notify()

    def _register(self, server: grpc.aio.Server) -> None:
        webhooks_pb2_grpc.add_WebhooksServicer_to_server(self._servicer, server)

    async def start(self) -> None:
        """Bind the gRPC server, start relaying the outbox and delivering."""
        await self.host.start(self._register, [SERVICE_NAME], self.host.checks(GROUP))
        self.worker.start()
        self._consumer.start()
        log.info("webhooks_started", port=self.port)
        if self._allow_private:
            # An operator setting for development: merchants' URLs may reach our network.
            log.warning("webhooks_private_addresses_allowed")

    async def stop(self) -> None:
        """Stop consuming, serving and delivering; stop the relay; close the database."""
        self._consumer.stop()
        await self.host.stop_serving()
        await self.worker.stop()
        await self._client.aclose()
        await self.host.close()


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
