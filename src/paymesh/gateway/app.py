"""Wiring: the gateway built from settings, served by uvicorn inside the caller's loop."""

from __future__ import annotations

from pathlib import Path

import grpc
import uvicorn

from paymesh.contracts.accounts.v1.accounts_pb2_grpc import AccountsStub
from paymesh.contracts.payments.v1.payments_pb2_grpc import PaymentsStub
from paymesh.contracts.risk.v1.risk_pb2_grpc import RiskStub
from paymesh.contracts.webhooks.v1.webhooks_pb2_grpc import WebhooksStub
from paymesh.gateway.api import build_limiter, create_app
from paymesh.gateway.ratelimit import RateLimiter, RedisRateLimiter
from paymesh.gateway.security import SecretHasher
from paymesh.gateway.service import KeyRing
from paymesh.gateway.settings import GatewaySettings
from paymesh.gateway.store import SqlGatewayStore
from paymesh.platform.bus import EventBus
from paymesh.platform.clock import Clock, SystemClock
from paymesh.platform.db import Database
from paymesh.platform.health import Check, Readiness, database_check
from paymesh.platform.http_server import HttpServer
from paymesh.platform.logging import get_logger
from paymesh.platform.loops import Periodic
from paymesh.platform.migrations import migrate_database
from paymesh.platform.rpc import open_channel
from paymesh.platform.settings import PlatformSettings
from paymesh.platform.tracing import Tracing

__all__ = ["MIGRATIONS", "GatewayRuntime", "create", "migrate"]

MIGRATIONS = Path(__file__).parent / "migrations"

log = get_logger(__name__)

# How often expired idempotency records are deleted, in seconds.
PURGE_INTERVAL_S = 600.0


async def migrate(settings: PlatformSettings) -> None:
    """Bring the gateway's database to the latest schema."""
    await migrate_database(
        settings.section(GatewaySettings).database_url, MIGRATIONS, service="gateway"
    )


class GatewayRuntime:
    """The running gateway: HTTP server, database, channels to the services."""

    name = "gateway"

    def __init__(
        self, settings: PlatformSettings, *, bus: EventBus, clock: Clock | None = None
    ) -> None:
        self._settings = settings
        self._bus = bus  # the gateway publishes nothing yet
        self.tracing = Tracing.of(settings, self.name)
        self._clock = clock or SystemClock()
        self._db: Database | None = None
        self._channels: list[grpc.aio.Channel] = []
        self._server: HttpServer | None = None
        self._purge = Periodic(
            "idempotency-purge", self._purge_expired, interval_s=PURGE_INTERVAL_S
        )
        self._limiter: RateLimiter | None = None
        self._hasher: SecretHasher | None = None
        self._console_hasher: SecretHasher | None = None
        self.store: SqlGatewayStore | None = None
        self.readiness = Readiness(self.name)
        self.port = 0

    async def start(self) -> None:
        """Open the database, load or create the signing key, start serving HTTP."""
        settings = self._settings
        g = settings.section(GatewaySettings)
        self._db = Database(g.database_url, service=self.name)
        self.store = SqlGatewayStore(self._db)
        keys = KeyRing(
            self.store,
            passphrase=g.secret_key.get_secret_value().encode(),
            clock=self._clock,
            token_ttl_s=g.token_ttl_s,
        )
        await keys.ensure()
        accounts_channel = open_channel(
            settings.peer("accounts").target, settings.tls, service=self.name
        )
        payments_channel = open_channel(
            settings.peer("payments").target, settings.tls, service=self.name
        )
        risk_channel = open_channel(settings.peer("risk").target, settings.tls, service=self.name)
        webhooks_channel = open_channel(
            settings.peer("webhooks").target, settings.tls, service=self.name
        )
        self._channels = [accounts_channel, payments_channel, risk_channel, webhooks_channel]
        self._limiter = build_limiter(settings, clock=self._clock)
        checks = [database_check(self._db)]
        if isinstance(self._limiter, RedisRateLimiter):
            checks.append(Check("redis", self._limiter.ping))
        await self.readiness.start(checks)
        self._hasher = SecretHasher(
            threads=g.hash_threads,
            max_waiting=g.hash_queue,
        )
        self._console_hasher = SecretHasher(threads=g.hash_threads, max_waiting=g.hash_queue)
        app = create_app(
            settings=settings,
            store=self.store,
            accounts=AccountsStub(accounts_channel),
            payments=PaymentsStub(payments_channel),
            clock=self._clock,
            keys=keys,
            limiter=self._limiter,
            risk=RiskStub(risk_channel),
            webhooks=WebhooksStub(webhooks_channel),
            hasher=self._hasher,
            console_hasher=self._console_hasher,
        )
        self.tracing.instrument_app(app)
        config = uvicorn.Config(
            app,
            host=g.host,
            port=g.port,
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            # HTTPS when given a certificate and key; plain HTTP otherwise.
            ssl_certfile=g.tls_cert_file or None,
            ssl_keyfile=g.tls_key_file or None,
        )
        self._server = HttpServer(config, name=f"gateway on {g.host}:{g.port}")
        try:
            self.port = await self._server.start()
        except RuntimeError:
            await self.stop()
            raise RuntimeError(f"gateway cannot listen on {g.host}:{g.port}") from None
        self._purge.start()
        log.info("gateway_started", host=g.host, port=self.port)

    async def _purge_expired(self) -> None:
        """Delete the expired idempotency records (a failure is logged, and retried later)."""
        if self.store is not None:
            await self.store.purge_expired_idempotency(self._clock.now_us())

    async def stop(self) -> None:
        """Finish requests in flight, stop serving, close channels and the database."""
        await self.readiness.stop()
        await self._purge.stop()
        if self._server is not None:
            await self._server.stop()
        self._server = None
        if self._limiter is not None:
            await self._limiter.aclose()
            self._limiter = None
        for hasher in (self._hasher, self._console_hasher):
            if hasher is not None:
                hasher.close()
        self._hasher = self._console_hasher = None
        for channel in self._channels:
            await channel.close()
        self._channels = []
        if self._db is not None:
            await self._db.dispose()
            self._db = None
        await self.tracing.shutdown()


def create(
    settings: PlatformSettings, *, bus: EventBus, clock: Clock | None = None
) -> GatewayRuntime:
    """The gateway runtime (no I/O until start)."""
    return GatewayRuntime(settings, bus=bus, clock=clock)
