"""The gateway runtime: migrations, uvicorn in the caller's loop, the demo bootstrap."""

from __future__ import annotations

from pathlib import Path

import httpx
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from paymesh.gateway.app import create, migrate
from paymesh.gateway.ports import Deps
from paymesh.gateway.service import bootstrap_demo
from paymesh.gateway.settings import GatewaySettings
from paymesh.gateway.tables import metadata
from paymesh.platform.bus import InProcessBus
from paymesh.platform.clock import SystemClock
from paymesh.platform.db import Database
from paymesh.settings import Settings


def _settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        var_dir=tmp_path,
        gateway=GatewaySettings(database_url=db_url, host="127.0.0.1", port=0),
    )


async def test_migrations_create_exactly_the_stores_tables(db_url: str, tmp_path: Path) -> None:
    await migrate(_settings(db_url, tmp_path))
    await migrate(_settings(db_url, tmp_path))  # a second run changes nothing
    db = Database(db_url)
    try:
        async with db.engine.connect() as conn:
            diffs = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
            )
    finally:
        await db.dispose()
    assert diffs == []


async def test_the_runtime_serves_http_and_the_demo_credentials_work(
    db_url: str, tmp_path: Path
) -> None:
    settings = _settings(db_url, tmp_path)
    await migrate(settings)
    runtime = create(settings, bus=InProcessBus())
    assert runtime.name == "gateway"
    await runtime.start()
    try:
        assert runtime.port > 0
        assert runtime.store is not None
        deps = Deps(store=runtime.store, clock=SystemClock())
        creds = await bootstrap_demo(deps=deps)
        assert creds is not None
        assert await bootstrap_demo(deps=deps) is None
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{runtime.port}") as http:
            keys = (await http.get("/.well-known/jwks.json")).json()["keys"]
            assert len(keys) == 1
            demo = await http.post(
                "/v1/oauth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": creds.client_id,
                    "client_secret": creds.client_secret,
                },
            )
            assert demo.status_code == 200
            assert "admin" not in demo.json()["scope"].split()
            assert "payments:write" in demo.json()["scope"].split()
            operator = await http.post(
                "/v1/oauth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": creds.operator_client_id,
                    "client_secret": creds.operator_client_secret,
                },
            )
            assert operator.json()["scope"] == "admin"
            token = operator.json()["access_token"]
            made = await http.post(
                "/v1/tenants", json={"name": "acme"}, headers={"Authorization": f"Bearer {token}"}
            )
            assert made.status_code == 201
    finally:
        await runtime.stop()
    # A restart keeps the signing key.
    again = create(settings, bus=InProcessBus())
    await again.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{again.port}") as http:
            assert (await http.get("/.well-known/jwks.json")).json()["keys"] == keys
    finally:
        await again.stop()
