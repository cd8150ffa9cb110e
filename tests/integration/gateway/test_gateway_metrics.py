"""The gateway's protections as metrics, read around real requests through the app:
Idempotency-Key outcomes, failed authentications by reason, and every 429 by its limit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from prometheus_client import REGISTRY

from paymesh.gateway.api import create_app
from paymesh.gateway.app import MIGRATIONS
from paymesh.gateway.ratelimit import MemoryRateLimiter, Policy
from paymesh.gateway.security import load_private_key
from paymesh.gateway.settings import GatewaySettings
from paymesh.gateway.store import SqlGatewayStore
from paymesh.platform.db import Database
from paymesh.platform.migrations import upgrade
from paymesh.settings import Settings
from tests.fakes.accounts import FakeAccounts
from tests.fakes.clock import FixedClock
from tests.fakes.payments import FakePayments
from tests.integration.gateway.conftest import Harness

PAY = {"payments:read", "payments:write"}
BODY = {
    "payer_account_id": "acct_payer",
    "payee_account_id": "acct_payee",
    "amount": 1250,
    "currency": "USD",
    "capture_method": "automatic",
}


def _count(name: str, label: str, value: str) -> float:
    return REGISTRY.get_sample_value(name, {"service": "gateway", label: value}) or 0.0


def _idem(outcome: str) -> float:
    return _count("paymesh_idempotency_requests_total", "outcome", outcome)


def _auth(reason: str) -> float:
    return _count("paymesh_auth_failures_total", "reason", reason)


def _limited(limit: str) -> float:
    return _count("paymesh_rate_limited_total", "limit", limit)


async def test_idempotency_keys_are_counted_first_replayed_conflict_and_in_progress(
    gw: Harness,
) -> None:
    before = {o: _idem(o) for o in ("first", "replayed", "conflict", "in_progress")}
    headers = {**await gw.auth(PAY), "Idempotency-Key": "metrics-1"}
    gw.payments.gate = asyncio.Event()
    first = asyncio.create_task(gw.http.post("/v1/payments", json=BODY, headers=headers))
    await gw.payments.entered.wait()
    busy = await gw.http.post("/v1/payments", json=BODY, headers=headers)
    gw.payments.gate.set()
    assert ((await first).status_code, busy.status_code) == (201, 409)
    replay = await gw.http.post("/v1/payments", json=BODY, headers=headers)
    reused = await gw.http.post("/v1/payments", json={**BODY, "amount": 9}, headers=headers)
    assert (replay.status_code, reused.status_code) == (201, 422)
    plain = await gw.http.get("/v1/payments", headers={"Authorization": headers["Authorization"]})
    assert plain.status_code == 200  # no key: not counted
    assert {o: _idem(o) - n for o, n in before.items()} == {
        "first": 1,
        "replayed": 1,
        "conflict": 1,
        "in_progress": 1,
    }


async def test_failed_authentications_are_counted_by_reason(gw: Harness) -> None:
    reasons = ("missing_token", "invalid_token", "expired", "revoked", "invalid_client")
    before = {r: _auth(r) for r in (*reasons, "client_revoked")}
    tenant, client_id, secret = await gw.new_client(PAY)
    good = await gw.token(client_id, secret)
    assert (await gw.http.get("/v1/payments")).status_code == 401
    garbage = {"Authorization": "Bearer not.a.token"}
    assert (await gw.http.get("/v1/payments", headers=garbage)).status_code == 401
    [key] = await gw.store.signing_keys()
    passphrase = gw.settings.gateway.secret_key.get_secret_value().encode()
    private = load_private_key(key, passphrase=passphrase)
    claims = jwt.decode(good, options={"verify_signature": False})
    old = {**claims, "iat": int(time.time()) - 3600, "exp": int(time.time()) - 600}
    expired = jwt.encode(old, private, algorithm="EdDSA", headers={"kid": key.kid, "typ": "at+jwt"})
    r = await gw.http.get("/v1/payments", headers={"Authorization": f"Bearer {expired}"})
    assert r.status_code == 401
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": "nope"}
    assert (await gw.http.post("/v1/oauth/token", data=form)).status_code == 401
    admin = await gw.auth({"admin"})
    r = await gw.http.delete(f"/v1/tenants/{tenant}/clients/{client_id}", headers=admin)
    assert r.status_code == 204
    bearer = {"Authorization": f"Bearer {good}"}
    assert (await gw.http.get("/v1/payments", headers=bearer)).status_code == 401
    form["client_secret"] = secret
    assert (await gw.http.post("/v1/oauth/token", data=form)).status_code == 401
    assert {r: _auth(r) - n for r, n in before.items()} == {
        "missing_token": 1,
        "invalid_token": 1,
        "expired": 1,
        "revoked": 1,
        "invalid_client": 1,
        "client_revoked": 1,
    }


@pytest.fixture
async def small(sqlite_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    """The gateway with a bucket of 3 requests per client and one payment at a time."""
    db = Database(sqlite_url)
    await upgrade(db, MIGRATIONS)
    settings = Settings(
        var_dir=tmp_path,
        gateway=GatewaySettings(
            database_url=sqlite_url, admission_max_in_flight=1, admission_queue=0
        ),
    )
    store, payments = SqlGatewayStore(db), FakePayments()
    limiter = MemoryRateLimiter(
        Policy(capacity=3, rate_per_s=0.001, name="client"), clock=FixedClock()
    )
    app = create_app(
        settings=settings, store=store, accounts=FakeAccounts(), payments=payments, limiter=limiter
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
            yield Harness(
                http=http,
                store=store,
                settings=settings,
                accounts=FakeAccounts(),
                payments=payments,
            )
    finally:
        await limiter.aclose()
        await db.dispose()


async def test_every_429_is_counted_by_the_limit_that_refused_it(small: Harness) -> None:
    before = {k: _limited(k) for k in ("client", "token", "overloaded")}
    _, client_id, secret = await small.new_client(PAY)
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    tokens: list[Any] = [await small.http.post("/v1/oauth/token", data=form) for _ in range(4)]
    assert [r.status_code for r in tokens] == [200, 200, 200, 429]  # the token endpoint's bucket
    auth = {"Authorization": f"Bearer {tokens[0].json()['access_token']}"}
    small.payments.gate = asyncio.Event()
    working = asyncio.create_task(
        small.http.post("/v1/payments", json=BODY, headers={**auth, "Idempotency-Key": "a"})
    )
    await small.payments.entered.wait()
    shed = await small.http.post(
        "/v1/payments", json=BODY, headers={**auth, "Idempotency-Key": "b"}
    )
    small.payments.gate.set()
    assert ((await working).status_code, shed.status_code) == (201, 429)
    assert shed.json()["code"] == "overloaded"
    more = [await small.http.get("/v1/payments", headers=auth) for _ in range(2)]
    assert [r.status_code for r in more] == [200, 429]  # the client's bucket of 3
    assert {k: _limited(k) - n for k, n in before.items()} == {
        "client": 1,
        "token": 1,
        "overloaded": 1,
    }
