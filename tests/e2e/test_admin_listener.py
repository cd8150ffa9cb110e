"""The embedded platform's admin listener: /metrics of all five services on one port,
/healthz, and a /readyz (and gRPC health) that follow a service's database."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy.engine import make_url

from paymesh.cli import bootstrap
from paymesh.launcher import Platform
from tests.conftest import PG_ADMIN, pg_database

from .conftest import Api, Running, embedded_settings
from .scrape import matching, scrape, total

SERVICES = ("accounts", "payments", "risk", "webhooks", "gateway")
HTTP = "paymesh_http_server_request_duration_seconds"
GRPC_SERVER = "paymesh_grpc_server_handled_seconds"
GRPC_CLIENT = "paymesh_grpc_client_handled_seconds"
DB = "paymesh_db_transaction_duration_seconds"


async def _pay_once(url: str, creds: dict[str, str]) -> dict[str, Any]:
    """Two accounts, a top-up and an automatically captured payment, then a GET of it."""
    api = await Api.login(url, creds["client_id"], creds["client_secret"])
    try:
        ids = []
        for kind in ("customer", "merchant"):
            body = {"currency": "USD", "type": kind}
            ids.append((await api.post("/v1/accounts", body, key=str(uuid.uuid4())))["id"])
        topup = {"account_id": ids[0], "amount": 10_000, "currency": "USD"}
        await api.post("/v1/topups", topup, key=str(uuid.uuid4()))
        body = {
            "payer_account_id": ids[0], "payee_account_id": ids[1], "amount": 2_500,
            "currency": "USD", "capture_method": "automatic",
        }  # fmt: skip
        payment = await api.post("/v1/payments", body, key=str(uuid.uuid4()))
        assert payment["status"] == "succeeded", payment
        await api.get(f"/v1/payments/{payment['id']}")
        return payment
    finally:
        await api.close()


async def test_one_scrape_shows_every_services_red_metrics_after_a_payment(
    embedded: Running, ports: dict[str, int]
) -> None:
    admin = f"http://127.0.0.1:{ports['admin']}"
    before = await scrape(admin)
    created = {"service": "gateway", "method": "POST", "route": "/v1/payments", "status": "201"}
    count_before = total(before, f"{HTTP}_count", **created)

    payment = await _pay_once(embedded.url, embedded.creds)
    samples = await scrape(admin)

    # HTTP, by route template: the POST that made the payment, the GET by its id.
    assert total(samples, f"{HTTP}_count", **created) == count_before + 1
    assert total(samples, f"{HTTP}_bucket", **created, le="+Inf") == count_before + 1
    get = {"method": "GET", "route": "/v1/payments/{payment_id}", "status": "200"}
    assert total(samples, f"{HTTP}_count", service="gateway", **get) >= 1
    for s in matching(samples, f"{HTTP}_count"):
        assert payment["id"] not in s.labels["route"], s
        assert not s.labels["route"].startswith("/v1/accounts/acc_"), s
    # gRPC, as the servers saw the calls and as the callers did.
    server_calls = {
        "payments": "/paymesh.payments.v1.Payments/CreatePayment",
        "risk": "/paymesh.risk.v1.Risk/Decide",
        "accounts": "/paymesh.accounts.v1.Accounts/CreateTransfers",
    }
    for service, method in server_calls.items():
        ok = {"service": service, "grpc_method": method, "grpc_code": "OK"}
        assert total(samples, f"{GRPC_SERVER}_count", **ok) >= 1, (service, method)
        assert total(samples, f"{GRPC_SERVER}_sum", **ok) > 0
    gateway_call = {"grpc_method": server_calls["payments"], "grpc_code": "OK"}
    assert total(samples, f"{GRPC_CLIENT}_count", service="gateway", **gateway_call) >= 1
    for callee in ("risk", "accounts"):
        call = {"grpc_method": server_calls[callee], "grpc_code": "OK"}
        assert total(samples, f"{GRPC_CLIENT}_count", service="payments", **call) >= 1
    # Database transactions of every service, and SQLite's write-lock wait apart.
    for service in SERVICES:
        assert total(samples, f"{DB}_count", service=service, kind="write") >= 1, service
        assert total(samples, f"{DB}_count", service=service, kind="read") >= 1, service
    lock_wait = "paymesh_db_sqlite_write_lock_wait_seconds_count"
    assert total(samples, lock_wait, service="accounts") >= 1
    # Every paymesh series the payment moved names its service, one of the five. (Other
    # tests of this process may have left series of databases they opened unnamed.)
    was = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in before}
    for s in samples:
        if s.name.startswith("paymesh_") and s.value != was.get(
            (s.name, tuple(sorted(s.labels.items()))), 0
        ):
            assert s.labels.get("service") in SERVICES, s
    for service in SERVICES:
        assert total(samples, "paymesh_ready", service=service) == 1, service

    async with httpx.AsyncClient(base_url=admin, timeout=10) as http:
        assert (await http.get("/healthz")).status_code == 200
        ready = await http.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json() == {
            "status": "ready",
            "services": {name: {"ready": True, "failed": {}} for name in SERVICES},
        }
        assert (await http.get("/nothing")).status_code == 404
        assert (await http.post("/metrics")).status_code == 405


# --- a service's database goes away, and comes back -------------------------------------


async def _admin_sql(statement: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def _cut_off(database: str) -> None:
    """No new connection to `database`, and every open one ended: gone, as far as
    the service can tell (the server itself and the other databases stay up)."""
    await _admin_sql(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
    await _admin_sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        f" WHERE datname = '{database}' AND pid <> pg_backend_pid()"
    )


async def _restore(database: str) -> None:
    await _admin_sql(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')


async def _until(check: Callable[[], Any], timeout_s: float = 30) -> Any:
    """Poll the async `check` until it returns something true (bounded)."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = await check()
        if got or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.2)


def _grpc_health(port: int) -> str:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=5
        )
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


@pytest.fixture
async def payments_on_postgresql(
    tmp_path: Path, ports: dict[str, int]
) -> AsyncIterator[tuple[Running, str]]:
    """The embedded platform with payments on a PostgreSQL database of its own (the
    others on SQLite); yields it and that database's name."""
    settings = embedded_settings(tmp_path / "var", ports)
    async with pg_database() as url:
        settings.payments.database_url = url
        platform = Platform(settings)
        await platform.start()
        try:
            creds = await bootstrap(platform)
            yield (
                Running(platform, f"http://127.0.0.1:{ports['gateway']}", creds),
                str(make_url(url).database),
            )
        finally:
            await platform.stop()


@pytest.mark.postgres
async def test_readyz_and_grpc_health_follow_a_services_database_away_and_back(
    payments_on_postgresql: tuple[Running, str], ports: dict[str, int]
) -> None:
    running, database = payments_on_postgresql
    admin = httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports['admin']}", timeout=10)
    try:
        assert (await admin.get("/readyz")).status_code == 200
        assert await asyncio.to_thread(_grpc_health, ports["payments"]) == "SERVING"
        await _pay_once(running.url, running.creds)

        await _cut_off(database)
        try:

            async def unready() -> httpx.Response | None:
                r = await admin.get("/readyz")
                return r if r.status_code == 503 else None

            answer = await _until(unready)
            assert answer is not None, "still ready with the payments database gone"
            body = answer.json()
            assert body["status"] == "not_ready"
            assert body["services"]["payments"]["ready"] is False
            assert set(body["services"]["payments"]["failed"]) == {"database"}
            for other in ("accounts", "risk", "webhooks", "gateway"):
                assert body["services"][other] == {"ready": True, "failed": {}}, other
            assert (await admin.get("/healthz")).status_code == 200  # alive all the same

            async def not_serving() -> bool:
                return await asyncio.to_thread(_grpc_health, ports["payments"]) == "NOT_SERVING"

            assert await _until(not_serving), "payments' gRPC health still says SERVING"
            assert await asyncio.to_thread(_grpc_health, ports["accounts"]) == "SERVING"
            samples = await scrape(str(admin.base_url).rstrip("/"))
            assert total(samples, "paymesh_ready", service="payments") == 0
            assert total(samples, "paymesh_ready", service="accounts") == 1
        finally:
            await _restore(database)

        async def ready_again() -> bool:
            return (await admin.get("/readyz")).status_code == 200

        assert await _until(ready_again), (await admin.get("/readyz")).text

        async def serving() -> bool:
            return await asyncio.to_thread(_grpc_health, ports["payments"]) == "SERVING"

        assert await _until(serving)
        await _pay_once(running.url, running.creds)  # and it serves again
    finally:
        await admin.aclose()
