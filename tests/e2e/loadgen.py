"""Load clients that run in processes of their own (spawned), so that a test measures
the server and not its own client: a steady reader and a token-endpoint flood."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["FloodResult", "Sample", "flood_tokens", "read_steadily"]

READ_INTERVAL_S = 0.025  # 40 reads a second: under the client's own rate limit (50/s)


@dataclass(frozen=True)
class Sample:
    """One read: when it started (unix seconds), how long it took, its status."""

    at: float
    latency: float
    status: int


@dataclass
class FloodResult:
    """What a flood got back, and when it ran (unix seconds)."""

    started: float
    ended: float
    statuses: Counter[int] = field(default_factory=Counter)
    retry_after_on_every_429: bool = True


def read_steadily(url: str, authorization: str, path: str, ready: Any, stop: Any, out: Any) -> None:
    """GET `path` every READ_INTERVAL_S until `stop` is set; put the samples on `out`."""
    out.put(asyncio.run(_read(url, authorization, path, ready, stop)))


async def _read(url: str, authorization: str, path: str, ready: Any, stop: Any) -> list[Sample]:
    samples: list[Sample] = []
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": authorization}, timeout=60
    ) as http:
        for _ in range(10):  # warm up: a connection, the server's caches
            (await http.get(path)).raise_for_status()
        ready.set()
        while not stop.is_set():
            at, started = time.time(), time.perf_counter()
            r = await http.get(path)
            latency = time.perf_counter() - started
            samples.append(Sample(at=at, latency=latency, status=r.status_code))
            await asyncio.sleep(max(0.0, READ_INTERVAL_S - latency))
    return samples


def flood_tokens(url: str, count: int, out: Any) -> None:
    """POST `count` token requests at once, each with an unknown client id; put a
    FloodResult on `out`."""
    out.put(asyncio.run(_flood(url, count)))


async def _flood(url: str, count: int) -> FloodResult:
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:

        async def one() -> httpx.Response:
            form = {
                "grant_type": "client_credentials",
                "client_id": f"cli_{secrets.token_hex(8)}",
                "client_secret": secrets.token_urlsafe(16),
            }
            return await http.post("/v1/oauth/token", data=form)

        started = time.time()
        answers = await asyncio.gather(*(one() for _ in range(count)))
        result = FloodResult(started=started, ended=time.time())
    for r in answers:
        result.statuses[r.status_code] += 1
        if r.status_code == 429 and int(r.headers.get("Retry-After", "0")) < 1:
            result.retry_after_on_every_429 = False
    return result
