"""Signing key rotation: old tokens keep verifying, then the retired key is dropped."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest

from paymesh.gateway.api import create_app
from paymesh.gateway.app import MIGRATIONS
from paymesh.gateway.audit import SYSTEM, Origin
from paymesh.gateway.keyring import LEEWAY_S, REFRESH_S, rotate_signing_key
from paymesh.gateway.ports import Deps
from paymesh.gateway.security import load_private_key, sign
from paymesh.gateway.service import CreateClient, CreateTenant, create_client, create_tenant
from paymesh.gateway.settings import GatewaySettings
from paymesh.gateway.store import SqlGatewayStore
from paymesh.platform.db import Database
from paymesh.platform.migrations import upgrade
from paymesh.settings import Settings
from tests.fakes.accounts import FakeAccounts
from tests.fakes.clock import FixedClock
from tests.fakes.payments import FakePayments
from tests.integration.gateway.conftest import FAST_SCRYPT

OPERATOR = Origin(actor="cli:test", source="cli")


@dataclass
class Rig:
    """The gateway app on a clock the test moves."""

    http: httpx.AsyncClient
    store: SqlGatewayStore
    clock: FixedClock
    settings: Settings
    tenant_id: str = ""
    client_id: str = ""
    secret: str = ""

    @property
    def passphrase(self) -> bytes:
        return self.settings.gateway.secret_key.get_secret_value().encode()

    async def token(self) -> str:
        r = await self.http.post(
            "/v1/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": self.client_id,
                "client_secret": self.secret,
            },
        )
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    async def status(self, token: str) -> int:
        r = await self.http.get("/v1/payments", headers={"Authorization": f"Bearer {token}"})
        return r.status_code

    async def jwks_kids(self) -> set[str]:
        return {k["kid"] for k in (await self.http.get("/.well-known/jwks.json")).json()["keys"]}

    async def rotate(self) -> str:
        key, _ = await rotate_signing_key(
            store=self.store, passphrase=self.passphrase, clock=self.clock, origin=OPERATOR
        )
        return key.kid

    async def forge(self, kid: str) -> str:
        """A token signed now by the stored key `kid` (what its holder could make)."""
        key = await self.store.signing_key(kid)
        assert key is not None
        now = self.clock.now_us() // 1_000_000
        claims = {
            "iss": self.settings.gateway.issuer,
            "aud": self.settings.gateway.audience,
            "sub": self.client_id,
            "tenant": self.tenant_id,
            "scope": "payments:read",
            "iat": now,
            "exp": now + self.settings.gateway.token_ttl_s,
            "jti": "jti_forged",
        }
        return sign(claims, private=load_private_key(key, passphrase=self.passphrase), kid=kid)


@pytest.fixture
async def rig(db_url: str, tmp_path: Path) -> AsyncIterator[Rig]:
    db = Database(db_url)
    await upgrade(db, MIGRATIONS)
    clock = FixedClock()
    settings = Settings(var_dir=tmp_path, gateway=GatewaySettings(database_url=db_url))
    store = SqlGatewayStore(db)
    deps = Deps(store=store, clock=clock, scrypt=FAST_SCRYPT)
    tenant = await create_tenant(
        CreateTenant(name=f"t-{uuid.uuid4().hex}"), origin=SYSTEM, deps=deps
    )
    client, secret = await create_client(
        CreateClient(tenant_id=tenant.id, scopes=frozenset({"payments:read"})),
        origin=SYSTEM,
        deps=deps,
    )
    app = create_app(
        settings=settings, store=store, accounts=FakeAccounts(), payments=FakePayments(),
        clock=clock,
    )  # fmt: skip
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
        yield Rig(http, store, clock, settings, tenant.id, client.client_id, secret)
    await db.dispose()


def _kid(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


async def test_tokens_of_the_old_key_verify_after_rotation_and_new_ones_carry_the_new_kid(
    rig: Rig,
) -> None:
    old_token = await rig.token()
    old_kid = _kid(old_token)
    new_kid = await rig.rotate()
    assert new_kid != old_kid
    rig.clock.advance(REFRESH_S)  # the running app re-reads its keys
    new_token = await rig.token()
    assert _kid(new_token) == new_kid
    assert await rig.status(old_token) == 200
    assert await rig.status(new_token) == 200
    assert await rig.jwks_kids() == {old_kid, new_kid}
    keys = {k.kid: k for k in await rig.store.signing_keys()}
    assert keys[old_kid].retired_at_us is not None
    assert keys[new_kid].retired_at_us is None


async def test_a_retired_key_stops_verifying_and_leaves_the_jwks_after_its_grace_period(
    rig: Rig,
) -> None:
    old_token = await rig.token()
    old_kid = _kid(old_token)
    new_kid = await rig.rotate()
    grace_s = rig.settings.gateway.token_ttl_s + LEEWAY_S
    rig.clock.advance(grace_s - 1)
    assert await rig.status(old_token) == 200  # its last tokens are still alive
    assert old_kid in await rig.jwks_kids()
    rig.clock.advance(2)
    assert await rig.status(old_token) == 401
    assert await rig.jwks_kids() == {new_kid}
    # Even a fresh token signed with the old key is refused: the key itself is gone.
    forged = await rig.forge(old_kid)
    r = await rig.http.get("/v1/payments", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401
    assert r.json()["code"] == "invalid_token"
    assert await rig.status(await rig.forge(new_kid)) == 200


async def test_a_running_app_accepts_a_rotated_in_kid_at_once_and_signs_with_it_soon(
    rig: Rig,
) -> None:
    old_kid = _kid(await rig.token())
    new_kid = await rig.rotate()  # as `paymesh keys rotate` does, behind the app's back
    rig.clock.advance(1)
    # Another gateway already signing with the new key: its tokens are accepted.
    assert await rig.status(await rig.forge(new_kid)) == 200
    assert new_kid in await rig.jwks_kids()
    rig.clock.advance(REFRESH_S)
    assert _kid(await rig.token()) == new_kid != old_kid
