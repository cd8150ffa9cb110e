"""The load: closed-loop clients in a process of their own (spawned by bench/e2e.py), so
that the platform's event loop never runs the bench's code.

One :class:`Job` per load process: its clients (one payer account each), what they do,
for how long and at most how many times. The process logs in, warms a connection per
client, says it is ready, waits for the go, runs, and puts its :class:`Tally` on the
result queue.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["Job", "Tally", "work"]


@dataclass(frozen=True)
class Job:
    """What one load process does.

    `kind`: "payments" (automatic capture; with `mix`, every other iteration a manual
    payment, its capture and a partial refund) or "baseline" (GET `baseline_path`
    with the client's payer id).
    """

    url: str
    client_id: str
    client_secret: str
    kind: str
    payers: list[str]
    merchant: str
    seconds: float
    max_ops: int
    mix: bool = False
    baseline_path: str = "/v1/accounts/{id}"


@dataclass
class Tally:
    """What one load process measured: latencies (seconds) by operation, errors by
    "operation:status" (or exception name), payments by status, its own CPU."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0
    cpu_s: float = 0.0

    def requests(self) -> int:
        return sum(len(v) for v in self.latencies.values()) + sum(self.errors.values())


def work(job: Job, ready: Any, go: Any, out: Any) -> None:
    """The body of a load process: put its Tally on `out`."""
    out.put(asyncio.run(_work(job, ready, go)))


class _Client:
    """One HTTP connection pool, timing every call into a :class:`Tally`."""

    def __init__(self, http: httpx.AsyncClient, tally: Tally) -> None:
        self.http = http
        self.tally = tally

    async def call(
        self, op: str, method: str, path: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        headers = {"Idempotency-Key": str(uuid.uuid4())} if method == "POST" else None
        started = time.perf_counter()
        try:
            r = await self.http.request(method, path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            self.tally.errors[f"{op}:{type(exc).__name__}"] += 1
            return None
        if r.status_code >= 300:
            self.tally.errors[f"{op}:{r.status_code}"] += 1
            return None
        self.tally.latencies.setdefault(op, []).append(time.perf_counter() - started)
        result: dict[str, Any] = r.json()
        return result


async def _token(http: httpx.AsyncClient, job: Job) -> str:
    r = await http.post(
        "/v1/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": job.client_id,
            "client_secret": job.client_secret,
        },
    )
    r.raise_for_status()
    return str(r.json()["access_token"])


async def _pay(c: _Client, job: Job, payer: str, manual: bool) -> None:
    """One automatic-capture payment; or (manual) a payment, its capture and a refund."""
    body = {
        "payer_account_id": payer,
        "payee_account_id": job.merchant,
        "amount": 100,
        "currency": "USD",
        "capture_method": "manual" if manual else "automatic",
    }
    payment = await c.call("payment_manual" if manual else "payment", "POST", "/v1/payments", body)
    if payment is None:
        return
    c.tally.outcomes[payment["status"]] += 1
    if not manual or payment["status"] != "requires_capture":
        return
    path = f"/v1/payments/{payment['id']}/capture"
    if await c.call("capture", "POST", path, {}) is None:
        return
    await c.call("refund", "POST", "/v1/refunds", {"payment_id": payment["id"], "amount": 50})


async def _work(job: Job, ready: Any, go: Any) -> Tally:
    tally = Tally()
    n = len(job.payers)
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=job.url, timeout=60, limits=limits) as http:
        http.headers["Authorization"] = f"Bearer {await _token(http, job)}"
        client = _Client(http, Tally())  # warm-up calls are not counted
        await asyncio.gather(
            *(client.call("warmup", "GET", job.baseline_path.format(id=p)) for p in job.payers)
        )
        client.tally = tally
        ready.put(True)
        await asyncio.to_thread(go.wait)
        done = 0
        started, cpu_started = time.perf_counter(), time.process_time()
        deadline = started + job.seconds

        async def one(payer: str) -> None:
            nonlocal done
            manual = False
            while time.perf_counter() < deadline and done < job.max_ops:
                done += 1
                if job.kind == "baseline":
                    await client.call("get", "GET", job.baseline_path.format(id=payer))
                else:
                    await _pay(client, job, payer, manual)
                    manual = job.mix and not manual

        await asyncio.gather(*(one(p) for p in job.payers))
        tally.elapsed_s = time.perf_counter() - started
        tally.cpu_s = time.process_time() - cpu_started
    return tally
