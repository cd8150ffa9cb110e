"""What every service's runtime is built around: its database, readiness, tracing,
outbox relay and gRPC server, started and stopped in the one right order.

A service's ``app.py`` runtime is a :class:`HostedService` on a :class:`ServiceHost`
(made with :meth:`ServiceHost.serving`, no I/O); it builds its store and
servicer on ``host.db`` and ``host.relay``, subscribes its consumers through
:meth:`ServiceHost.consume`, then::

    start:  await host.start(register, [SERVICE_NAME], host.checks(GROUP))
            ... its own background work ...
    stop:   await host.stop_serving()   # not ready, then the gRPC server stops
            ... its own background work ...
            await host.close()          # relay, database, tracing
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import grpc
import sqlalchemy as sa

from paymesh.platform.bus import EventBus, Handler
from paymesh.platform.clock import Clock
from paymesh.platform.db import Database
from paymesh.platform.health import (
    Check,
    Readiness,
    consumers_check,
    database_check,
    event_bus_check,
)
from paymesh.platform.outbox import OutboxRelay
from paymesh.platform.rpc import GrpcServer
from paymesh.platform.settings import PlatformSettings
from paymesh.platform.tracing import Tracing

__all__ = ["HostedService", "ServiceHost", "ServiceSection"]


class ServiceSection(Protocol):
    """A service's settings section: where its database is and where it listens."""

    @property
    def database_url(self) -> str: ...

    @property
    def listen(self) -> str: ...


class ServiceHost:
    """One service's database, readiness, tracing, outbox relay and gRPC server."""

    def __init__(
        self,
        name: str,
        settings: PlatformSettings,
        *,
        database_url: str,
        listen: str,
        bus: EventBus,
        clock: Clock,
        outbox: sa.Table,
        relay_name: str = "outbox-relay",
    ) -> None:
        self.name = name
        self.bus = bus
        self.db = Database(database_url, service=name)
        self.readiness = Readiness(name)
        self.tracing = Tracing.of(settings, name)
        self.relay = OutboxRelay(self.db, outbox, bus, service=name, clock=clock, name=relay_name)
        self._listen = listen
        self._tls = settings.tls
        self._server: GrpcServer | None = None
        self.port = 0

    @classmethod
    def serving(
        cls,
        name: str,
        settings: PlatformSettings,
        section: ServiceSection,
        *,
        bus: EventBus,
        clock: Clock,
        outbox: sa.Table,
        relay_name: str = "outbox-relay",
    ) -> ServiceHost:
        """The host of service `name`, on the database and address its `section` gives."""
        return cls(
            name,
            settings,
            database_url=section.database_url,
            listen=section.listen,
            bus=bus,
            clock=clock,
            outbox=outbox,
            relay_name=relay_name,
        )

    def consume(self, topics: Sequence[str], group: str, handler: Handler) -> None:
        """Deliver `topics` to `handler` in consumer group `group`, traced."""
        for topic in topics:
            self.bus.subscribe(
                topic, group, self.tracing.consumer(topic, group, handler), service=self.name
            )

    def checks(self, *groups: str) -> list[Check]:
        """The readiness checks every service has: its database, the event bus and (when
        it consumes) the consumers of `groups`."""
        checks = [database_check(self.db), event_bus_check(self.bus)]
        if groups:
            checks.append(consumers_check(self.bus, *groups))
        return checks

    async def start(
        self,
        register: Callable[[grpc.aio.Server], None],
        service_names: Sequence[str],
        checks: Sequence[Check],
    ) -> int:
        """Start checking readiness, bind the gRPC server, start the relay; return the port."""
        await self.readiness.start(checks)
        self._server = GrpcServer(
            self._listen,
            register,
            service_names,
            tls=self._tls,
            service=self.name,
            ready=lambda: self.readiness.ready,
            interceptors=self.tracing.server_interceptors(),
        )
        self.port = await self._server.start()
        self.relay.start()
        return self.port

    async def stop_serving(self) -> None:
        """Say the service is not ready, then stop the gRPC server (calls in flight end)."""
        await self.readiness.stop()
        if self._server is not None:
            await self._server.stop()
            self._server = None

    async def close(self) -> None:
        """Stop the relay, close the database, flush the traces."""
        await self.relay.stop()
        await self.db.dispose()
        await self.tracing.shutdown()


class HostedService:
    """The base of a service's runtime built around a :class:`ServiceHost`: its
    readiness, tracing and gRPC port are the host's."""

    def __init__(self, host: ServiceHost) -> None:
        self.host = host
        self.readiness = host.readiness
        self.tracing = host.tracing

    @property
    def port(self) -> int:
        """The bound gRPC port (0 before start)."""
        return self.host.port
