"""Abuse limits through the gateway app: rate limits and failed-login limits (in memory and
on real Redis), body, pages."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from paymesh.gateway.api import create_app
from paymesh.gateway.app import MIGRATIONS
from paymesh.gateway.audit import SYSTEM
from paymesh.gateway.ports import Deps
from paymesh.gateway.ratelimit import MemoryRateLimiter, Policy, RateLimiter, RedisRateLimiter
from paymesh.gateway.security import SecretHasher
from paymesh.gateway.service import CreateClient, CreateTenant, create_client, create_tenant
from paymesh.gateway.settings import GatewaySettings
from paymesh.gateway.store import SqlGatewayStore
from paymesh.platform.clock import SystemClock
from paymesh.platform.db import Database
from paymesh.platform.migrations import upgrade
from paymesh.settings import Settings
from tests.fakes.accounts import FakeAccounts
from tests.fakes.clock import FixedClock
from tests.fakes.payments import FakePayments
from tests.integration.gateway.conftest import FAST_SCRYPT

REDIS_URL = "redis://127.0.0.1:6379/0"
LIMIT = 5
POLICY = Policy(capacity=LIMIT, rate_per_s=0.5, name="client")  # a token every 2 s


@dataclass
class Limited:
    """The gateway app with a small bucket on a clock the test moves."""

    http: httpx.AsyncClient
    store: SqlGatewayStore
    clock: FixedClock
    limiter: RateLimiter

    async def bearer(self, scopes: frozenset[str] = frozenset({"payments:read"})) -> str:
        """A token for a new client; the token request itself costs one token of its own bucket."""
        deps = Deps(store=self.store, clock=SystemClock(), scrypt=FAST_SCRYPT)
        tenant = await create_tenant(
            CreateTenant(name=f"t-{uuid.uuid4().hex}"), origin=SYSTEM, deps=deps
        )
        client, secret = await create_client(
            CreateClient(tenant_id=tenant.id, scopes=scopes), origin=SYSTEM, deps=deps
        )
        r = await self.http.post(
            "/v1/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client.client_id,
                "client_secret": secret,
            },
        )
        assert r.status_code == 200, r.text
        return f"Bearer {r.json()['access_token']}"

    async def get(self, auth: str, path: str = "/v1/payments") -> httpx.Response:
        return await self.http.get(path, headers={"Authorization": auth})


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A random key prefix on the real Redis, its keys deleted afterwards."""
    prefix = f"paymesh:test:{uuid.uuid4().hex}:"
    yield prefix
    client = aioredis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def _limited(
    sqlite_url: str, tmp_path: Path, limiter: RateLimiter, clock: FixedClock
) -> AsyncIterator[Limited]:
    db = Database(sqlite_url)
    await upgrade(db, MIGRATIONS)
    settings = Settings(var_dir=tmp_path, gateway=GatewaySettings(database_url=sqlite_url))
    store = SqlGatewayStore(db)
    app = create_app(
        settings=settings,
        store=store,
        accounts=FakeAccounts(),
        payments=FakePayments(),
        limiter=limiter,
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
            yield Limited(http=http, store=store, clock=clock, limiter=limiter)
    finally:
        await limiter.aclose()
        await db.dispose()


@pytest.fixture(params=["memory", "redis"])
async def lim(
    request: pytest.FixtureRequest, sqlite_url: str, tmp_path: Path, redis_prefix: str
) -> AsyncIterator[Limited]:
    """The limited gateway on each adapter: in memory, and on the real Redis."""
    clock = FixedClock()
    limiter: RateLimiter
    if request.param == "memory":
        limiter = MemoryRateLimiter(POLICY, clock=clock)
    else:
        limiter = RedisRateLimiter.from_url(REDIS_URL, POLICY, clock=clock, prefix=redis_prefix)
    async for harness in _limited(sqlite_url, tmp_path, limiter, clock):
        yield harness


async def test_a_burst_of_ten_times_the_limit_gets_exactly_the_excess_refused(
    lim: Limited,
) -> None:
    alice, bob = await lim.bearer(), await lim.bearer()
    answers = [await lim.get(alice) for _ in range(10 * LIMIT)]
    statuses = [r.status_code for r in answers]
    assert statuses == [200] * LIMIT + [429] * (9 * LIMIT)
    refused = answers[-1]
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["RateLimit-Policy"] == '"client";q=5;w=10'
    assert refused.headers["RateLimit"].startswith('"client";r=0;t=')
    assert answers[0].headers["RateLimit"] == '"client";r=4;t=2'
    # Another client in the same moment is unaffected.
    assert (await lim.get(bob)).status_code == 200


async def test_refill_lets_the_client_back_in_after_retry_after(lim: Limited) -> None:
    alice = await lim.bearer()
    for _ in range(LIMIT):
        assert (await lim.get(alice)).status_code == 200
    refused = await lim.get(alice)
    assert refused.status_code == 429
    lim.clock.advance(int(refused.headers["Retry-After"]) - 0.5)
    assert (await lim.get(alice)).status_code == 429
    lim.clock.advance(0.5)
    assert (await lim.get(alice)).status_code == 200


async def test_concurrent_requests_never_get_more_than_the_bucket_holds(lim: Limited) -> None:
    alice = await lim.bearer()
    answers = await asyncio.gather(*(lim.get(alice) for _ in range(60)))
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200] * LIMIT + [429] * (60 - LIMIT)


async def test_the_redis_script_is_atomic_under_many_concurrent_hits(redis_prefix: str) -> None:
    clock = FixedClock()
    limiter = RedisRateLimiter.from_url(
        REDIS_URL, Policy(capacity=25, rate_per_s=1.0), clock=clock, prefix=redis_prefix
    )
    try:
        decisions = await asyncio.gather(*(limiter.hit("shared") for _ in range(300)))
    finally:
        await limiter.aclose()
    assert sum(d.allowed for d in decisions) == 25


async def test_the_token_endpoint_is_limited_per_client_id(lim: Limited) -> None:
    form = {"grant_type": "client_credentials", "client_id": "cli_guess", "client_secret": "x"}
    statuses = [(await lim.http.post("/v1/oauth/token", data=form)).status_code for _ in range(8)]
    assert statuses == [401] * LIMIT + [429] * 3
    other = {**form, "client_id": "cli_other"}
    assert (await lim.http.post("/v1/oauth/token", data=other)).status_code == 401


async def test_an_unreachable_redis_fails_open_without_a_5xx(
    sqlite_url: str, tmp_path: Path
) -> None:
    clock = FixedClock()
    limiter = RedisRateLimiter.from_url("redis://127.0.0.1:1/0", POLICY, clock=clock)
    async for harness in _limited(sqlite_url, tmp_path, limiter, clock):
        alice = await harness.bearer()
        answers = [await harness.get(alice) for _ in range(3 * LIMIT)]
        assert {r.status_code for r in answers} == {200}
        assert "RateLimit" not in answers[0].headers


@pytest.fixture
async def small(sqlite_url: str, tmp_path: Path) -> AsyncIterator[Limited]:
    """The gateway with default limits (a 64 KiB body cap)."""
    clock = FixedClock()
    async for harness in _limited(sqlite_url, tmp_path, MemoryRateLimiter(POLICY), clock):
        yield harness


async def test_a_body_over_the_cap_is_refused_with_413(small: Limited) -> None:
    auth = await small.bearer(frozenset({"payments:write"}))
    body = b'{"x":"' + b"a" * (70 * 1024) + b'"}'
    r = await small.http.post(
        "/v1/payments",
        content=body,
        headers={"Authorization": auth, "Content-Type": "application/json", "Idempotency-Key": "k"},
    )
    assert r.status_code == 413
    assert r.json()["code"] == "payload_too_large"


async def test_a_chunked_body_over_the_cap_is_refused_with_413(small: Limited) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):  # 100 x 4 KiB, sent without a Content-Length
            yield b"a" * 4096

    r = await small.http.post(
        "/v1/oauth/token", content=chunks(), headers={"Content-Type": "text/plain"}
    )
    assert r.status_code == 413
    assert r.json()["code"] == "payload_too_large"


@pytest.mark.parametrize("limit", ["0", "101"])
@pytest.mark.parametrize("path", ["/v1/payments", "/v1/events", "/v1/accounts/acct_x/entries"])
async def test_every_list_refuses_a_page_size_outside_1_to_100(
    small: Limited, path: str, limit: str
) -> None:
    auth = await small.bearer(frozenset({"payments:read", "accounts:read"}))
    r = await small.http.get(path, params={"limit": limit}, headers={"Authorization": auth})
    assert r.status_code == 422
    assert r.json()["code"] == "validation_error"


async def test_every_route_documents_413_and_429_and_the_rate_limit_headers(
    small: Limited,
) -> None:
    doc: dict[str, Any] = (await small.http.get("/openapi.json")).json()
    for item in doc["paths"].values():
        for op in item.values():
            responses = op["responses"]
            for status in ("413", "429"):
                schema = responses[status]["content"]["application/problem+json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Problem"}
            assert {"Retry-After", "RateLimit", "RateLimit-Policy"} <= set(
                responses["429"]["headers"]
            )
            ok = [s for s in responses if s.startswith("2")]
            assert all("RateLimit" in responses[s]["headers"] for s in ok)


@pytest.mark.serial  # a 0.2 s limit: beside another worker, the quick requests may pass it
async def test_a_request_past_the_time_limit_gets_a_504_problem(
    sqlite_url: str, tmp_path: Path
) -> None:
    db = Database(sqlite_url)
    await upgrade(db, MIGRATIONS)
    settings = Settings(
        var_dir=tmp_path,
        gateway=GatewaySettings(database_url=sqlite_url, request_timeout_s=0.2),
    )
    payments = FakePayments(gate=asyncio.Event())  # create_payment waits forever
    app = create_app(
        settings=settings, store=SqlGatewayStore(db), accounts=FakeAccounts(), payments=payments
    )
    harness = Limited(
        http=httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url="http://gateway.test",
        ),
        store=SqlGatewayStore(db),
        clock=FixedClock(),
        limiter=app.state.gateway.limiter,
    )
    try:
        auth = await harness.bearer(frozenset({"payments:write"}))
        body = {"payer_account_id": "acct_a", "payee_account_id": "acct_b", "amount": 100}
        r = await harness.http.post(
            "/v1/payments",
            json={**body, "currency": "USD", "capture_method": "automatic"},
            headers={"Authorization": auth, "Idempotency-Key": "slow"},
        )
        assert r.status_code == 504
        assert r.json()["code"] == "request_timeout"
    finally:
        await harness.http.aclose()
        await harness.limiter.aclose()
        await db.dispose()


async def test_a_flood_of_bad_tokens_is_audited_only_up_to_the_limit(lim: Limited) -> None:
    import sqlalchemy as sa

    from paymesh.gateway.tables import audit_log

    alice = await lim.bearer()
    answers = [await lim.get("Bearer not.a.token") for _ in range(10 * LIMIT)]
    statuses = [r.status_code for r in answers]
    assert statuses == [401] * LIMIT + [429] * (9 * LIMIT)
    async with lim.store.db.read() as conn:
        failures = (
            await conn.execute(
                sa.select(sa.func.count())
                .select_from(audit_log)
                .where(audit_log.c.action == "auth.failed")
            )
        ).scalar_one()
    assert failures == LIMIT  # not one audit write per bad request
    # A client with a valid token from the same address is unaffected.
    assert (await lim.get(alice)).status_code == 200


# --- failed client credentials: per address and per client id, before the hash ----------

FAILURES = 3  # the failure bucket: 3 failed attempts, then one more every 2 s


class CountingHasher(SecretHasher):
    """The real hasher, counting the secrets it checked."""

    def __init__(self) -> None:
        super().__init__(threads=1, max_waiting=8)
        self.checked = 0

    async def verify(self, secret: str, stored: str | None) -> bool:
        self.checked += 1
        return await super().verify(secret, stored)


@dataclass
class Guarded:
    """The gateway app with a small failure bucket, reached from any address."""

    app: Any
    store: SqlGatewayStore
    clock: FixedClock
    hasher: CountingHasher

    async def token(self, client_id: str, secret: str, *, source: str) -> httpx.Response:
        transport = httpx.ASGITransport(
            app=self.app, raise_app_exceptions=False, client=(source, 40000)
        )
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
            form = {
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secret,
            }
            return await http.post("/v1/oauth/token", data=form)

    async def new_client(self) -> tuple[str, str]:
        deps = Deps(store=self.store, clock=SystemClock(), scrypt=FAST_SCRYPT)
        tenant = await create_tenant(
            CreateTenant(name=f"t-{uuid.uuid4().hex}"), origin=SYSTEM, deps=deps
        )
        client, secret = await create_client(
            CreateClient(tenant_id=tenant.id, scopes=frozenset({"payments:read"})),
            origin=SYSTEM,
            deps=deps,
        )
        return client.client_id, secret


@pytest.fixture(params=["memory", "redis"])
async def guarded(
    request: pytest.FixtureRequest, sqlite_url: str, tmp_path: Path, redis_prefix: str
) -> AsyncIterator[Guarded]:
    """The gateway with FAILURES failed attempts per address and per client id, on each
    limiter adapter (in memory, and on the real Redis under a prefix of its own)."""
    clock = FixedClock()
    roomy = Policy(capacity=1000, rate_per_s=100.0, name="client")  # never the limit here
    limiter: RateLimiter
    if request.param == "memory":
        limiter = MemoryRateLimiter(roomy, clock=clock)
    else:
        limiter = RedisRateLimiter.from_url(REDIS_URL, roomy, clock=clock, prefix=redis_prefix)
    db = Database(sqlite_url)
    await upgrade(db, MIGRATIONS)
    settings = Settings(
        var_dir=tmp_path,
        gateway=GatewaySettings(
            database_url=sqlite_url, auth_failure_burst=FAILURES, auth_failure_per_s=0.5
        ),
    )
    store, hasher = SqlGatewayStore(db), CountingHasher()
    app = create_app(
        settings=settings,
        store=store,
        accounts=FakeAccounts(),
        payments=FakePayments(),
        limiter=limiter,
        hasher=hasher,
    )
    try:
        yield Guarded(app=app, store=store, clock=clock, hasher=hasher)
    finally:
        hasher.close()
        await limiter.aclose()
        await db.dispose()


async def test_failed_logins_from_one_address_are_refused_before_any_hash_once_over_the_limit(
    guarded: Guarded,
) -> None:
    answers = [
        await guarded.token(f"cli_unknown{n}", "guess", source="10.0.0.1") for n in range(10)
    ]
    assert [r.status_code for r in answers] == [401] * FAILURES + [429] * (10 - FAILURES)
    assert guarded.hasher.checked == FAILURES  # the refused ones cost no hash
    refused = answers[-1]
    assert refused.json()["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) == 2
    assert refused.headers["RateLimit-Policy"] == '"auth-failures";q=3;w=6'
    assert refused.headers["RateLimit"].startswith('"auth-failures";r=0;')
    # Another address is not affected; the refused one is let back in after Retry-After.
    assert (await guarded.token("cli_unknown", "guess", source="10.0.0.2")).status_code == 401
    guarded.clock.advance(2)
    assert (await guarded.token("cli_unknown", "guess", source="10.0.0.1")).status_code == 401
    assert (await guarded.token("cli_unknown", "guess", source="10.0.0.1")).status_code == 429


async def test_failed_logins_to_one_client_id_are_refused_from_every_address(
    guarded: Guarded,
) -> None:
    client_id, secret = await guarded.new_client()
    statuses = [
        (await guarded.token(client_id, "guess", source=f"10.0.1.{n}")).status_code
        for n in range(FAILURES + 2)
    ]
    assert statuses == [401] * FAILURES + [429, 429]
    assert guarded.hasher.checked == FAILURES
    # Even the right secret waits until the client's failure bucket has a token again.
    assert (await guarded.token(client_id, secret, source="10.0.1.99")).status_code == 429
    guarded.clock.advance(2)
    assert (await guarded.token(client_id, secret, source="10.0.1.99")).status_code == 200
    # Another client id, from an address that guessed before, is not affected.
    other, _ = await guarded.new_client()
    assert (await guarded.token(other, "guess", source="10.0.1.0")).status_code == 401


async def test_successful_logins_give_their_charge_back(guarded: Guarded) -> None:
    client_id, secret = await guarded.new_client()
    assert (await guarded.token(client_id, "guess", source="10.0.2.1")).status_code == 401
    for _ in range(3 * FAILURES):
        assert (await guarded.token(client_id, secret, source="10.0.2.1")).status_code == 200
    # Only the failures counted: FAILURES - 1 more may fail before the refusal.
    statuses = [
        (await guarded.token(client_id, "guess", source="10.0.2.1")).status_code
        for _ in range(FAILURES)
    ]
    assert statuses == [401] * (FAILURES - 1) + [429]


# --- admission of money-moving requests --------------------------------------------------


async def test_a_payment_refused_for_overload_claims_no_key_and_its_retry_pays_once(
    sqlite_url: str, tmp_path: Path
) -> None:
    db = Database(sqlite_url)
    await upgrade(db, MIGRATIONS)
    settings = Settings(
        var_dir=tmp_path,
        gateway=GatewaySettings(
            database_url=sqlite_url, admission_max_in_flight=1, admission_queue=0
        ),
    )
    payments = FakePayments(gate=asyncio.Event())  # the first payment waits for the test
    app = create_app(
        settings=settings, store=SqlGatewayStore(db), accounts=FakeAccounts(), payments=payments
    )
    harness = Limited(
        http=httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url="http://gateway.test",
        ),
        store=SqlGatewayStore(db),
        clock=FixedClock(),
        limiter=app.state.gateway.limiter,
    )
    body = {
        "payer_account_id": "acct_a",
        "payee_account_id": "acct_b",
        "amount": 100,
        "currency": "USD",
        "capture_method": "automatic",
    }
    try:
        auth = await harness.bearer(frozenset({"payments:write"}))

        async def pay(key: str) -> httpx.Response:
            return await harness.http.post(
                "/v1/payments", json=body, headers={"Authorization": auth, "Idempotency-Key": key}
            )

        working = asyncio.create_task(pay("first"))
        await payments.entered.wait()
        refused = await pay("second")
        assert refused.status_code == 429
        assert refused.json()["code"] == "overloaded"
        assert int(refused.headers["Retry-After"]) >= 1
        assert len(payments.create_calls) == 1  # refused before any work
        assert payments.gate is not None
        payments.gate.set()
        assert (await working).status_code == 201
        retried = await pay("second")
        assert retried.status_code == 201
        assert "Idempotent-Replayed" not in retried.headers  # the first attempt at this key
        replayed = await pay("second")
        assert replayed.headers["Idempotent-Replayed"] == "true"
        assert replayed.content == retried.content
        assert len(payments.create_calls) == 2
        assert len(set(payments.create_calls)) == 2
    finally:
        await harness.http.aclose()
        await harness.limiter.aclose()
        app.state.gateway.hasher.close()
        await db.dispose()
