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
from typing import Any

from paymesh.platform.bus import EventBus, InProcessBus
from paymesh.platform.clock import Clock
from paymesh.platform.logging import get_logger
from paymesh.platform.runtime import Runtime
from paymesh.platform.settings import Settings

__all__ = ["SERVICES", "Platform", "app_module"]

log = get_logger(__name__)

# Start order: what others call comes first; the gateway opens the door last.
SERVICES: tuple[str, ...] = ("accounts", "risk", "payments", "gateway")


def app_module(service: str) -> ModuleType:
    """``paymesh.<service>.app``: the wiring of one service."""
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
    return importlib.import_module(f"paymesh.{service}.app")


@dataclass
class Platform:
    """Some or all services of paymesh, sharing one event bus."""

    settings: Settings
    services: Sequence[str] = SERVICES
    bus: EventBus = field(default_factory=InProcessBus)
    clock: Clock | None = None
    runtimes: list[Runtime] = field(default_factory=list)

    async def migrate(self) -> None:
        """Bring every service's database to its newest schema."""
        for name in self.services:
            await app_module(name).migrate(self.settings)

    async def start(self) -> None:
        """Migrate, then start each service in order; on failure stop what started."""
        await self.migrate()
        try:
            for name in self.services:
                runtime: Runtime = app_module(name).create(
                    self.settings, bus=self.bus, clock=self.clock
                )
                await runtime.start()
                self.runtimes.append(runtime)
                log.info("service_started", service=name)
            await self.bus.start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop every started service, the gateway first."""
        await self.bus.stop()
        while self.runtimes:
            runtime = self.runtimes.pop()
            try:
                await runtime.stop()
            except Exception:
                log.exception("service_stop_failed", service=runtime.name)
        log.info("platform_stopped")

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
