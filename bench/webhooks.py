"""Webhook delivery throughput: events in through the bus, signed POSTs out to a local
receiver, until every delivery succeeded.

Starts the webhooks service alone (SQLite in a temporary folder, or the
database given with --database-url) with an in-process bus and a minimal HTTP
receiver on 127.0.0.1 (allowed with allow_private_addresses). Bounded by
--events and --seconds.

    python bench/webhooks.py [--events 1000] [--endpoints 4] [--per-endpoint 5]

Prints deliveries/s and attempt latency percentiles; asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from paymesh.contracts.events import TOPIC_PAYMENTS, Event
from paymesh.platform.bus import InProcessBus
from paymesh.platform.clock import SystemClock
from paymesh.platform.logging import configure_logging
from paymesh.settings import Settings
from paymesh.webhooks import app
from paymesh.webhooks.domain import CreateEndpoint
from paymesh.webhooks.sealing import SecretBox
from paymesh.webhooks.service import EndpointPolicy, create_endpoint
from paymesh.webhooks.tables import attempts, deliveries


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _receiver(expected: int, all_in: asyncio.Event) -> tuple[asyncio.Server, list[int]]:
    got: list[int] = [0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            got[0] += 1
            if got[0] >= expected:
                all_in.set()
            writer.write(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    return server, got


async def main(args: argparse.Namespace) -> None:
    configure_logging("WARNING")
    folder = Path(tempfile.mkdtemp(prefix="paymesh-bench-webhooks-"))
    url = args.database_url or f"sqlite+aiosqlite:///{folder / 'webhooks.db'}"
    settings = Settings(
        var_dir=folder,
        webhooks={
            "database_url": url,
            "listen": f"127.0.0.1:{_free_port()}",
            "allow_private_addresses": True,
            "max_in_flight_per_endpoint": args.per_endpoint,
            "max_in_flight": args.in_flight,
            "poll_interval_s": 0.05,
        },
    )
    await app.migrate(settings)
    expected = args.events * args.endpoints
    all_in = asyncio.Event()
    server, _got = await _receiver(expected, all_in)
    port = server.sockets[0].getsockname()[1]
    bus = InProcessBus()
    runtime = app.create(settings, bus=bus)
    await bus.start()
    await runtime.start()
    box = SecretBox(settings.webhooks.secret_key.get_secret_value())
    policy = EndpointPolicy("development", True, 60)
    for n in range(args.endpoints):
        await create_endpoint(
            CreateEndpoint(f"we_{n}", "ten_bench", f"http://127.0.0.1:{port}/{n}", ("*",)),
            store=runtime.store, box=box, policy=policy, clock=SystemClock(),
        )  # fmt: skip
    started = time.perf_counter()
    try:
        for n in range(args.events):
            await bus.publish(
                TOPIC_PAYMENTS,
                Event(
                    id=f"evt_bench_{n}", source="/paymesh/payments", type="payment.succeeded",
                    subject=f"pay_{n}", time="2026-01-01T00:00:00Z", tenant="ten_bench",
                    data={"id": f"pay_{n}", "object": "payment", "amount": 100, "currency": "USD"},
                ),
            )  # fmt: skip
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_in.wait(), args.seconds)
        db = runtime._db
        done = 0
        for _ in range(int(args.seconds * 20)):  # the last results are being recorded
            async with db.read() as conn:
                done = (
                    await conn.execute(
                        sa.select(sa.func.count())
                        .select_from(deliveries)
                        .where(deliveries.c.status == "succeeded")
                    )
                ).scalar_one()
            if done >= expected:
                break
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
        async with db.read() as conn:
            latencies = sorted((await conn.execute(sa.select(attempts.c.latency_ms))).scalars())
    finally:
        await runtime.stop()
        await bus.stop()
        server.close()
    q = statistics.quantiles(latencies, n=100) if len(latencies) >= 2 else [0.0] * 99
    print(f"database            {url.split(':', 1)[0]}")
    print(f"endpoints           {args.endpoints} (in flight <= {args.per_endpoint} each)")
    print(f"deliveries          {done}/{expected} succeeded in {elapsed:.2f} s")
    print(f"throughput          {done / elapsed:.0f} deliveries/s")
    print(f"attempt latency ms  p50 {q[49]:.0f}  p95 {q[94]:.0f}  p99 {q[98]:.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--endpoints", type=int, default=4)
    parser.add_argument("--per-endpoint", type=int, default=5)
    parser.add_argument("--in-flight", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--database-url", default="")
    sys.exit(asyncio.run(main(parser.parse_args())))
