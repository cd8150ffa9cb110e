"""The embedded platform, started inside the test on free loopback ports."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from paymesh.accounts.audit import verify
from paymesh.cli import bootstrap
from paymesh.launcher import Platform
from paymesh.platform.db import Database
from paymesh.settings import Settings
from tests.conftest import pg_database


def embedded_settings(var_dir: Path, ports: dict[str, int]) -> Settings:
    """Settings for an embedded platform under `var_dir` on the given ports (the five
    services' metrics and health on one admin listener, on ports["admin"] if given)."""
    admin = f"127.0.0.1:{ports.get('admin', 0)}"
    return Settings(
        var_dir=var_dir,
        accounts={"listen": f"127.0.0.1:{ports['accounts']}", "admin_listen": admin},
        risk={"listen": f"127.0.0.1:{ports['risk']}", "admin_listen": admin},
        payments={
            "listen": f"127.0.0.1:{ports['payments']}",
            "resume_interval_s": 0.5,
            "admin_listen": admin,
        },
        # Test receivers listen on 127.0.0.1: let deliveries reach them.
        webhooks={
            "listen": f"127.0.0.1:{ports['webhooks']}",
            "allow_private_addresses": True,
            "admin_listen": admin,
        },
        gateway={"port": ports["gateway"], "admin_listen": admin},
    )


@dataclass
class Running:
    """A started embedded platform and the demo credentials it printed."""

    platform: Platform
    url: str
    creds: dict[str, str]


@pytest.fixture
async def embedded(tmp_path: Path, ports: dict[str, int]) -> AsyncIterator[Running]:
    """Every service in this process, each on its own port with its own SQLite file."""
    settings = embedded_settings(tmp_path / "var", ports)
    platform = Platform(settings)
    await platform.start()
    try:
        creds = await bootstrap(platform)
        yield Running(platform, f"http://127.0.0.1:{ports['gateway']}", creds)
    finally:
        await platform.stop()
    # Whatever the test did through the API, the ledger it leaves must audit clean.
    db = Database(settings.accounts.database_url)
    try:
        audit = await verify(db)
    finally:
        await db.dispose()
    assert audit.ok, "\n".join(str(p) for p in audit.problems)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def embedded_on(
    request: pytest.FixtureRequest, tmp_path: Path, ports: dict[str, int]
) -> AsyncIterator[Running]:
    """The embedded platform once on SQLite and once with every service on PostgreSQL."""
    settings = embedded_settings(tmp_path / "var", ports)
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "postgresql":
            for svc in (settings.accounts, settings.payments, settings.risk, settings.webhooks):
                svc.database_url = await stack.enter_async_context(pg_database())
            settings.gateway.database_url = await stack.enter_async_context(pg_database())
        platform = Platform(settings)
        await platform.start()
        try:
            creds = await bootstrap(platform)
            yield Running(platform, f"http://127.0.0.1:{ports['gateway']}", creds)
        finally:
            await platform.stop()
        db = Database(settings.accounts.database_url)
        try:
            audit = await verify(db)
        finally:
            await db.dispose()
        assert audit.ok, "\n".join(str(p) for p in audit.problems)


class Api:
    """A thin REST client for tests: a token, JSON in and out."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    @classmethod
    async def login(cls, url: str, client_id: str, client_secret: str) -> Api:
        http = httpx.AsyncClient(base_url=url, timeout=30)
        r = await http.post(
            "/v1/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": client_secret,
            },
        )
        assert r.status_code == 200, r.text
        http.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        return cls(http)

    async def post(
        self, path: str, body: dict[str, Any], *, key: str | None = None, status: int = 201
    ) -> dict[str, Any]:
        headers = {"Idempotency-Key": key} if key else {}
        r = await self.http.post(path, json=body, headers=headers)
        assert r.status_code == status, r.text
        result: dict[str, Any] = r.json()
        return result

    async def get(self, path: str, *, status: int = 200) -> dict[str, Any]:
        r = await self.http.get(path)
        assert r.status_code == status, r.text
        result: dict[str, Any] = r.json()
        return result

    async def close(self) -> None:
        await self.http.aclose()
