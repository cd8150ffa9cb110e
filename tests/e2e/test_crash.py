"""Crash the payments process with SIGKILL, again and again, while clients pay, capture and
refund through the gateway; afterwards no money is created, lost or moved twice, every saga
finishes, and no event is lost.

A client here behaves as a real one should: each request has its own Idempotency-Key and is
sent again with the SAME key after a connection error, a 5xx or a 409 "in progress", until
it gets an answer. The killer is seeded, so a failing run can be replayed (PAYMESH_CRASH_SEED).
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from paymesh.contracts.events import TOPIC_PAYMENTS

from .test_distributed import PAYMESH, Distributed, asyncpg_dsn, distributed_platform, read_topic

SEED = int(os.environ.get("PAYMESH_CRASH_SEED", "20260101"))
KILLS = 6
MIN_PAYMENTS, MAX_PAYMENTS = 100, 160
WORKERS = 4
CUSTOMERS, MERCHANTS = 8, 3
TOPUP = 1_000_000
RISK_LIMIT = 1_000_000  # the default USD amount limit: above it risk declines
# How long one request may keep failing before the test gives up on the platform.
REQUEST_PATIENCE_S = 90.0
RETRY_STATUSES = {429, 500, 502, 503, 504}


@pytest.fixture
def distributed(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Distributed]:
    with distributed_platform(tmp_path / "crash", kafka_bootstrap) as platform:
        yield platform


class Client:
    """A patient API client: the same Idempotency-Key until an answer comes."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.retries = 0

    async def send(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, key: str | None = None
    ) -> tuple[httpx.Response, int]:
        """The first real answer to the request (never a 5xx or an 'in progress'), and
        how many attempts it took."""
        headers = {"Idempotency-Key": key} if key else {}
        deadline = time.monotonic() + REQUEST_PATIENCE_S
        delay = 0.05
        attempts = 0
        while True:
            attempts += 1
            try:
                r = await self.http.request(method, path, json=body, headers=headers)
                if r.status_code not in RETRY_STATUSES and not _in_progress(r):
                    return r, attempts
                why = f"{r.status_code} {r.text[:200]}"
            except httpx.TransportError as exc:
                why = repr(exc)
            self.retries += 1
            if time.monotonic() > deadline:
                raise AssertionError(f"{method} {path}: no answer in {REQUEST_PATIENCE_S}s: {why}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def post(self, path: str, body: dict[str, Any], *, expect: int) -> dict[str, Any]:
        r, _ = await self.send("POST", path, body, key=str(uuid.uuid4()))
        assert r.status_code == expect, f"POST {path}: {r.status_code} {r.text}"
        result: dict[str, Any] = r.json()
        return result

    async def get(self, path: str) -> dict[str, Any]:
        r, _ = await self.send("GET", path)
        assert r.status_code == 200, f"GET {path}: {r.status_code} {r.text}"
        result: dict[str, Any] = r.json()
        return result


def _in_progress(r: httpx.Response) -> bool:
    if r.status_code != 409:
        return False
    try:
        return bool(r.json().get("code") == "idempotency_key_in_progress")
    except ValueError:
        return False


@dataclass
class Run:
    """What the driver did and what the killer did."""

    payments: list[str] = field(default_factory=list)
    refunds: list[str] = field(default_factory=list)
    kills: int = 0
    done: bool = False
    killer_done: bool = False
    actions: Counter[str] = field(default_factory=Counter)


async def login(url: str, client_id: str, secret: str) -> Client:
    client = Client(httpx.AsyncClient(base_url=url, timeout=15))
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    r = await client.http.post("/v1/oauth/token", data=form)
    assert r.status_code == 200, r.text
    client.http.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
    return client


async def until_settled(client: Client, payment: dict[str, Any]) -> dict[str, Any]:
    """The payment once it is no longer processing (a crash may leave it to the Resumer)."""
    deadline = time.monotonic() + REQUEST_PATIENCE_S
    while payment["status"] == "processing":
        assert time.monotonic() < deadline, f"payment stuck processing: {payment}"
        await asyncio.sleep(0.2)
        payment = await client.get(f"/v1/payments/{payment['id']}")
    return payment


async def finish(
    client: Client, run: Run, payment_id: str, action: str, body: dict[str, Any]
) -> dict[str, Any]:
    """Capture or cancel a payment, retried with one key until answered: 200 or the test fails.

    When payments dies after starting the work but before answering, the gateway answers
    503 and the client sends the request again with the same key; the gateway derives the
    same request id from it, so payments finishes that very capture or cancel and answers
    the payment, never a 409 as if it were a second one. Such retries are counted.
    """
    r, attempts = await client.send(
        "POST", f"/v1/payments/{payment_id}/{action}", body, key=str(uuid.uuid4())
    )
    assert r.status_code == 200, (
        f"{action} {payment_id}: {r.status_code} {r.text} after {attempts} tries"
    )
    if attempts > 1:
        run.actions[f"{action}_retried"] += 1
    result: dict[str, Any] = r.json()
    return result


async def one_payment(
    client: Client, rng: random.Random, run: Run, customers: list[str], merchants: list[str]
) -> None:
    """Pay; then maybe capture (all or part) or cancel; then maybe refund (all or part)."""
    manual = rng.random() < 0.5
    amount = rng.randint(100, 5_000) if rng.random() > 0.05 else RISK_LIMIT + 1
    payment = await client.post(
        "/v1/payments",
        {
            "payer_account_id": rng.choice(customers),
            "payee_account_id": rng.choice(merchants),
            "amount": amount,
            "currency": "USD",
            "capture_method": "manual" if manual else "automatic",
        },
        expect=201,
    )
    run.payments.append(payment["id"])
    run.actions["manual" if manual else "automatic"] += 1
    payment = await until_settled(client, payment)
    if payment["status"] == "requires_capture":
        roll = rng.random()
        if roll < 0.15:
            return  # left authorised: its hold must still be there at the end
        if roll < 0.3:
            await finish(client, run, payment["id"], "cancel", {})
            run.actions["cancel"] += 1
            return
        part = rng.choice([None, rng.randint(1, payment["amount"])])
        body = {} if part is None else {"amount": part}
        payment = await finish(client, run, payment["id"], "capture", body)
        run.actions["capture"] += 1
        payment = await until_settled(client, payment)
    if payment["status"] == "succeeded" and rng.random() < 0.35:
        part = rng.choice([None, rng.randint(1, payment["amount_captured"])])
        refund = await client.post(
            "/v1/refunds",
            {"payment_id": payment["id"], **({} if part is None else {"amount": part})},
            expect=201,
        )
        run.refunds.append(refund["id"])
        run.actions["refund"] += 1


async def driver(
    client: Client, rng: random.Random, run: Run, customers: list[str], merchants: list[str]
) -> None:
    """One client paying at a human-ish pace until the run has enough payments."""
    while True:
        started = len(run.payments)
        if started >= MAX_PAYMENTS or (started >= MIN_PAYMENTS and run.killer_done):
            return
        await one_payment(client, rng, run, customers, merchants)
        await asyncio.sleep(rng.uniform(0.2, 1.2))


async def killer(platform: Distributed, rng: random.Random, run: Run) -> None:
    """SIGKILL payments at random moments, restart it, wait until it answers again."""
    try:
        while run.kills < KILLS and not run.done:
            await asyncio.sleep(rng.uniform(1.0, 4.0))
            if run.done:
                return
            platform.kill("payments")
            run.kills += 1
            await asyncio.sleep(rng.uniform(0.0, 0.5))
            platform.restart("payments")
            await platform.await_answering("payments")
    finally:
        run.killer_done = True


async def wait_settled(
    client: Client, run: Run, timeout_s: float = 60
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every payment terminal or requires_capture and every refund terminal (bounded)."""
    deadline = time.monotonic() + timeout_s
    while True:
        payments = [await client.get(f"/v1/payments/{p}") for p in run.payments]
        refunds = [await client.get(f"/v1/refunds/{r}") for r in run.refunds]
        busy = [p["id"] for p in payments if p["status"] == "processing"]
        busy += [r["id"] for r in refunds if r["status"] == "processing"]
        if not busy:
            return payments, refunds
        assert time.monotonic() < deadline, f"sagas never finished: {busy} ({summary(run)})"
        await asyncio.sleep(0.5)


def expected_balances(
    payments: list[dict[str, Any]],
    refunds: list[dict[str, Any]],
    customers: list[str],
    *,
    topup: int = TOPUP,
    payouts: list[dict[str, Any]] | None = None,
) -> dict[str, dict[str, int]]:
    """Each account's balance as the top-ups (`topup` per customer), the completed payments,
    captures, refunds and payouts say."""
    posted: dict[str, int] = defaultdict(int)
    held: dict[str, int] = defaultdict(int)
    for c in customers:
        posted[c] += topup
    for o in payouts or []:
        if o["status"] == "succeeded":
            posted[o["account_id"]] -= o["amount"]
    by_id = {p["id"]: p for p in payments}
    for p in payments:
        payer, payee = p["payer_account_id"], p["payee_account_id"]
        if p["status"] == "succeeded":
            posted[payer] -= p["amount_captured"]
            posted[payee] += p["amount_captured"] - (p.get("fee") or 0)
        elif p["status"] == "requires_capture":
            held[payer] += p["amount"]
            held[payee] -= p["amount"]
    for r in refunds:
        if r["status"] == "succeeded":
            p = by_id[r["payment_id"]]
            posted[p["payer_account_id"]] += r["amount"]
            posted[p["payee_account_id"]] -= r["amount"]
    # available = posted - debits_pending; pending = credits_pending - debits_pending.
    return {
        account: {
            "posted": posted[account],
            "available": posted[account] - max(held[account], 0),
            "pending": -held[account],
        }
        for account in set(posted) | set(held)
    }


def summary(run: Run) -> str:
    return (
        f"survived {run.kills} SIGKILLs of payments; {len(run.payments)} payments, "
        f"{len(run.refunds)} refunds; actions {dict(run.actions)}; seed {SEED}"
    )


def ledger_verify(platform: Distributed) -> subprocess.CompletedProcess[str] | None:
    """`paymesh ledger verify` on the accounts database, when the command exists."""
    env = platform.env()
    probe = subprocess.run(
        [str(PAYMESH), "ledger", "--help"], env=env, capture_output=True, text=True, check=False
    )
    if probe.returncode != 0 or "verify" not in probe.stdout:
        return None
    return subprocess.run(
        [str(PAYMESH), "ledger", "verify", "--database-url", platform.database_urls["accounts"]],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def ledger_sums(platform: Distributed) -> dict[str, tuple[int, int]]:
    """Per currency, over every account (funding included): posted and pending net sums."""
    conn = await asyncpg.connect(asyncpg_dsn(platform.database_urls["accounts"]))
    try:
        rows = await conn.fetch(
            "SELECT currency, SUM(credits_posted - debits_posted) AS posted,"
            " SUM(credits_pending - debits_pending) AS pending FROM accounts GROUP BY currency"
        )
    finally:
        await conn.close()
    return {r["currency"]: (int(r["posted"]), int(r["pending"])) for r in rows}


async def test_sigkilling_payments_mid_flight_loses_or_duplicates_no_money_and_no_event(
    distributed: Distributed,
) -> None:
    rng = random.Random(SEED)
    platform = distributed
    creds = platform.creds
    client = await login(platform.url, creds["client_id"], creds["client_secret"])
    run = Run()
    try:
        customers = [
            (
                await client.post(
                    "/v1/accounts", {"currency": "USD", "type": "customer"}, expect=201
                )
            )["id"]
            for _ in range(CUSTOMERS)
        ]
        merchants = [
            (
                await client.post(
                    "/v1/accounts", {"currency": "USD", "type": "merchant"}, expect=201
                )
            )["id"]
            for _ in range(MERCHANTS)
        ]
        for c in customers:
            topup = await client.post(
                "/v1/topups", {"account_id": c, "amount": TOPUP, "currency": "USD"}, expect=201
            )
            assert topup["status"] == "succeeded", topup

        started = time.monotonic()
        kill_task = asyncio.create_task(killer(platform, random.Random(rng.random()), run))
        drivers = [
            driver(client, random.Random(rng.random()), run, customers, merchants)
            for _ in range(WORKERS)
        ]
        try:
            await asyncio.gather(*drivers)
        finally:
            run.done = True
            await kill_task
        if platform.procs["payments"].poll() is not None:  # pragma: no cover - killer died
            platform.restart("payments")
        await platform.await_healthy("payments")
        took = time.monotonic() - started
        print(f"\ncrash test: {summary(run)}; {took:.0f}s; {client.retries} retried requests")
        assert run.kills >= 5, summary(run)

        payments, refunds = await wait_settled(client, run)
        statuses = Counter(p["status"] for p in payments)
        print(f"crash test: payment statuses {dict(statuses)}")
        assert set(statuses) <= {"succeeded", "failed", "canceled", "requires_capture"}, statuses
        assert statuses["succeeded"] > 0, statuses

        expected = expected_balances(payments, refunds, customers)
        for account in [*customers, *merchants]:
            got = (await client.get(f"/v1/accounts/{account}"))["balance"]
            want = expected.get(account, {"posted": 0, "available": 0, "pending": 0})
            assert got == want, f"{account}: {got} != {want} ({summary(run)})"
    finally:
        await client.http.aclose()

    verified = await asyncio.to_thread(ledger_verify, platform)
    if verified is not None:
        assert verified.returncode == 0, f"{verified.stdout}{verified.stderr}\n{summary(run)}"
    else:
        sums = await ledger_sums(platform)
        assert sums == {"USD": (0, 0)}, f"money created or lost: {sums} ({summary(run)})"

    # No event lost: each terminal payment and refund has its terminal event in Kafka.
    wanted = {(p["id"], f"payment.{p['status']}") for p in payments if p["status"] != "processing"}
    wanted |= {(r["id"], f"refund.{r['status']}") for r in refunds}
    records = await asyncio.to_thread(
        read_topic,
        platform.kafka,
        platform.topic(TOPIC_PAYMENTS),
        lambda rs: {(r.event.subject, r.event.type) for r in rs} >= wanted,
        60,
    )
    seen = {(r.event.subject, r.event.type) for r in records}
    lost = wanted - seen
    assert not lost, (
        f"{len(lost)} events never reached Kafka, e.g. {sorted(lost)[:5]} ({summary(run)})"
    )
    print(f"crash test: all {len(wanted)} terminal events found in Kafka ({len(records)} messages)")
