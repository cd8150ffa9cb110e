"""Overload on the embedded platform: a burst of payments, a flood of token requests.

Neither may get a 5xx: what the platform cannot take on at once is queued
within the request's time, or refused before any work with 429 and a
Retry-After; and a flood at the token endpoint must not slow other clients.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from paymesh.accounts.audit import verify
from paymesh.cli import bootstrap
from paymesh.launcher import Platform
from paymesh.platform.db import Database
from tests.e2e import loadgen

from .conftest import Api, Running, embedded_settings

pytestmark = pytest.mark.serial  # measures latency: alone, not beside another worker

BURST = 300
AMOUNT = 100
FUNDS = BURST * AMOUNT + 5_000


async def _open(api: Api, kind: str) -> str:
    acct = await api.post("/v1/accounts", {"currency": "USD", "type": kind}, key=str(uuid.uuid4()))
    return str(acct["id"])


def _retry_after(r: httpx.Response) -> int:
    value = int(r.headers["Retry-After"])
    assert value >= 1
    return value


@pytest.fixture
async def roomy(tmp_path: Path, ports: dict[str, int]) -> AsyncIterator[Running]:
    """The embedded platform whose per-client rate limit lets a whole burst through, so
    that the burst reaches the gateway's admission and the services behind it."""
    settings = embedded_settings(tmp_path / "var", ports)
    settings.gateway.rate_limit_burst = 2 * BURST
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


async def test_a_burst_of_300_payments_from_one_payer_is_queued_or_shed_with_429_never_a_5xx(
    roomy: Running,
) -> None:
    embedded = roomy
    creds = embedded.creds
    api = await Api.login(embedded.url, creds["client_id"], creds["client_secret"])
    started = time.monotonic()
    try:
        payer, payee = await _open(api, "customer"), await _open(api, "merchant")
        await api.post(
            "/v1/topups",
            {"account_id": payer, "amount": FUNDS, "currency": "USD"},
            key=str(uuid.uuid4()),
        )
        body = {
            "payer_account_id": payer,
            "payee_account_id": payee,
            "amount": AMOUNT,
            "currency": "USD",
            "capture_method": "automatic",
        }
        keys = [str(uuid.uuid4()) for _ in range(BURST)]
        authorization = api.http.headers["Authorization"]

        async def pay_all(batch: list[str]) -> dict[str, httpx.Response]:
            # A new client each round: the server closes connections idle for 5 s.
            async with httpx.AsyncClient(
                base_url=embedded.url,
                headers={"Authorization": authorization},
                timeout=60,
                limits=httpx.Limits(max_connections=len(batch)),
            ) as http:
                answers = await asyncio.gather(
                    *(
                        http.post("/v1/payments", json=body, headers={"Idempotency-Key": key})
                        for key in batch
                    )
                )
            seen = Counter(f"{r.status_code} {r.json().get('code', 'created')}" for r in answers)
            assert {r.status_code for r in answers} <= {201, 429}, seen
            return dict(zip(batch, answers, strict=True))

        first = await pay_all(keys)
        seen = Counter(f"{r.status_code} {r.json().get('code', 'created')}" for r in first.values())
        print(f"\nfirst answers to {BURST} concurrent payments: {dict(seen)}")
        done = {k: r.json() for k, r in first.items() if r.status_code == 201}
        refused = {k: r for k, r in first.items() if r.status_code == 429}
        rounds = 0
        # Retrying the refused ones with their own keys converges (bounded in time).
        while refused and time.monotonic() - started < 50:
            rounds += 1
            await asyncio.sleep(min(5, max(_retry_after(r) for r in refused.values())))
            again = await pay_all(list(refused))
            done |= {k: r.json() for k, r in again.items() if r.status_code == 201}
            refused = {k: r for k, r in again.items() if r.status_code == 429}
        print(f"all {BURST} created after {rounds} rounds of retries")
        assert not refused, f"{len(refused)} still refused after {rounds} rounds"
    finally:
        await api.close()
    api = await Api.login(embedded.url, creds["client_id"], creds["client_secret"])
    try:
        assert len(done) == BURST
        assert {p["status"] for p in done.values()} == {"succeeded"}
        assert len({p["id"] for p in done.values()}) == BURST
        listed = await _all_payments(api)
        assert sorted(p["id"] for p in listed) == sorted(p["id"] for p in done.values())
        payer_after = (await api.get(f"/v1/accounts/{payer}"))["balance"]
        payee_after = (await api.get(f"/v1/accounts/{payee}"))["balance"]
        captured = sum(p["amount_captured"] for p in done.values())
        fees = sum(p["fee"] for p in done.values())
        assert captured == BURST * AMOUNT
        assert payer_after == {
            "available": FUNDS - captured,
            "pending": 0,
            "posted": FUNDS - captured,
        }
        assert payee_after["posted"] == payee_after["available"] == captured - fees
    finally:
        await api.close()


async def _all_payments(api: Api) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    after = ""
    while True:
        page = await api.get(f"/v1/payments?limit=100{after}")
        found += page["data"]
        if not page["has_more"]:
            return found
        after = f"&starting_after={page['data'][-1]['id']}"


FLOOD = 300
P99_LIMIT_S = 0.100


async def test_a_token_flood_with_unknown_client_ids_is_shed_and_leaves_other_clients_fast(
    embedded: Running,
) -> None:
    creds = embedded.creds
    api = await Api.login(embedded.url, creds["client_id"], creds["client_secret"])
    try:
        account = await _open(api, "customer")
        token = api.http.headers["Authorization"]
    finally:
        await api.close()
    # The reader and the flood each run in a process of their own, so that neither
    # the flood's client nor the test's event loop (which serves the platform)
    # distorts the reader's clock.
    spawn = multiprocessing.get_context("spawn")
    stop, ready = spawn.Event(), spawn.Event()
    samples: multiprocessing.Queue[Any] = spawn.Queue()
    flooded: multiprocessing.Queue[Any] = spawn.Queue()
    reader = spawn.Process(
        target=loadgen.read_steadily,
        args=(embedded.url, token, f"/v1/accounts/{account}", ready, stop, samples),
    )
    flood = spawn.Process(target=loadgen.flood_tokens, args=(embedded.url, FLOOD, flooded))
    reader.start()
    try:
        assert await asyncio.to_thread(ready.wait, 30), "the reader did not start"
        flood.start()
        result: loadgen.FloodResult = await asyncio.to_thread(flooded.get, True, 60)
        await asyncio.sleep(0.5)  # what the flood left behind, if anything
        stop.set()
        reads: list[loadgen.Sample] = await asyncio.to_thread(samples.get, True, 30)
    finally:
        stop.set()
        for process in (reader, flood):
            await asyncio.to_thread(process.join, 10)
            if process.is_alive():
                process.kill()
    during = [s for s in reads if result.started <= s.at <= result.ended + 0.5]
    latencies = sorted(s.latency for s in during)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(
        f"\ntoken flood of {FLOOD} unknown client ids: {dict(result.statuses)} in "
        f"{result.ended - result.started:.2f} s; another client's GET during it: "
        f"{len(latencies)} reads, p50 {latencies[len(latencies) // 2] * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms"
    )
    assert len(during) >= 20, "too few reads during the flood to measure anything"
    assert {s.status for s in during} == {200}
    assert not [s for s in result.statuses if s >= 500]
    assert result.statuses[429] > 0
    assert result.retry_after_on_every_429
    assert p99 < P99_LIMIT_S
