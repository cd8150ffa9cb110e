"""The gateway app over a real store (SQLite and PostgreSQL) with the in-memory fakes of
tests/fakes behind it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from paymesh.gateway.api import create_app
from paymesh.gateway.app import MIGRATIONS
from paymesh.gateway.audit import SYSTEM
from paymesh.gateway.ports import Deps
from paymesh.gateway.security import ScryptParams
from paymesh.gateway.service import CreateClient, CreateTenant, create_client, create_tenant
from paymesh.gateway.settings import GatewaySettings
from paymesh.gateway.store import SqlGatewayStore
from paymesh.platform.clock import SystemClock
from paymesh.platform.db import Database
from paymesh.platform.migrations import upgrade
from paymesh.settings import Settings
from tests.fakes.accounts import FakeAccounts
from tests.fakes.payments import FakePayments

FAST_SCRYPT = ScryptParams(n=2**10)


@dataclass
class Harness:
    """An HTTP client on the gateway app, its store and the fake services."""

    http: httpx.AsyncClient
    store: SqlGatewayStore
    settings: Settings
    accounts: FakeAccounts
    payments: FakePayments

    async def new_client(
        self, scopes: set[str], *, tenant: str | None = None
    ) -> tuple[str, str, str]:
        """(tenant_id, client_id, client_secret) of a new client, in a new tenant by default."""
        clock = SystemClock()
        # The hash keeps its parameters; the API's clients use the default.
        deps = Deps(store=self.store, clock=clock, scrypt=FAST_SCRYPT)
        if tenant is None:
            made = await create_tenant(
                CreateTenant(name=f"t{len(self.accounts.accounts)}-{id(scopes)}-{clock.now_us()}"),
                origin=SYSTEM,
                deps=deps,
            )
            tenant = made.id
        client, secret = await create_client(
            CreateClient(tenant_id=tenant, scopes=frozenset(scopes)), origin=SYSTEM, deps=deps
        )
        return tenant, client.client_id, secret

    async def token(self, client_id: str, secret: str, scope: str | None = None) -> str:
        form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
        if scope is not None:
            form["scope"] = scope
        r = await self.http.post("/v1/oauth/token", data=form)
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    async def auth(self, scopes: set[str], *, tenant: str | None = None) -> dict[str, str]:
        """Authorization headers for a new client holding `scopes`."""
        _, client_id, secret = await self.new_client(scopes, tenant=tenant)
        return {"Authorization": f"Bearer {await self.token(client_id, secret)}"}


ALL = {"accounts:read", "accounts:write", "payments:read", "payments:write"}


@pytest.fixture
async def gw(db_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    """The gateway on a migrated database, with fake accounts and payments services."""
    db = Database(db_url)
    await upgrade(db, MIGRATIONS)
    settings = Settings(var_dir=tmp_path, gateway=GatewaySettings(database_url=db_url))
    store = SqlGatewayStore(db)
    accounts, payments = FakeAccounts(), FakePayments()
    app = create_app(settings=settings, store=store, accounts=accounts, payments=payments)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
        yield Harness(
            http=http, store=store, settings=settings, accounts=accounts, payments=payments
        )
    await db.dispose()


__all__ = ["ALL", "Harness"]
