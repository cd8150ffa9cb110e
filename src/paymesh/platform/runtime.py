"""What a service's ``app.py`` hands to ``paymesh up`` and ``paymesh serve``.

Every service module ``paymesh.<service>.app`` provides::

    MIGRATIONS: Path                      # its Alembic script folder
    async def migrate(settings: Settings) -> None
    def create(settings: Settings, *, bus: EventBus, clock: Clock | None = None) -> Runtime

``create`` builds adapters from settings and does no I/O; ``start`` opens
connections, binds the server and starts background work (its ``readiness``
checks among them); ``stop`` undoes it, saying first that it is not ready.
"""

from __future__ import annotations

from typing import Protocol

from paymesh.platform.health import Readiness

__all__ = ["Runtime"]


class Runtime(Protocol):
    """A running service."""

    name: str
    # Whether it can serve now (its database, bus, Redis): /readyz and gRPC health.
    readiness: Readiness

    async def start(self) -> None: ...

    async def stop(self) -> None: ...
