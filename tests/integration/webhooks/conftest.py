"""Fixtures for the webhooks tests: a real HTTP receiver on 127.0.0.1 that records what
it gets and answers as the test tells it, and the running webhooks service."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from paymesh.contracts.events import TOPIC_PAYMENTS, Event
from paymesh.contracts.webhooks.v1 import webhooks_pb2, webhooks_pb2_grpc
from paymesh.platform.bus import InProcessBus
from paymesh.platform.clock import Clock
from paymesh.platform.identity import Caller
from paymesh.platform.rpc import caller_options, open_channel
from paymesh.settings import Settings
from paymesh.webhooks import app
from paymesh.webhooks.app import WebhooksRuntime
from tests.conftest import free_port

ALICE = Caller(tenant_id="ten_alice", client_id="cli_a", scopes=frozenset({"webhooks:write"}))
BOB = Caller(tenant_id="ten_bob", client_id="cli_b", scopes=frozenset({"webhooks:write"}))


@dataclass
class Received:
    """One request the receiver got."""

    headers: dict[str, str]
    body: bytes


@dataclass
class Reply:
    """How the receiver answers one request."""

    status: int = 200
    delay_s: float = 0.0
    endless_body: bool = False
    hold: asyncio.Event | None = None
    location: str = ""


@dataclass
class Receiver:
    """A small HTTP/1.1 server: records each request, answers with `reply(n)`."""

    reply: Callable[[int], Reply] = lambda n: Reply()
    requests: list[Received] = field(default_factory=list)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    in_flight: int = 0
    max_in_flight: int = 0
    body_bytes_sent: int = 0
    port: int = 0
    _server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks?token=sekrit"

    async def start(self, tls: ssl.SSLContext | None = None) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    async def wait_for(self, count: int, timeout_s: float = 20) -> list[Received]:
        async with asyncio.timeout(timeout_s):
            async with self.arrived:
                await self.arrived.wait_for(lambda: len(self.requests) >= count)
        return list(self.requests)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            n = len(self.requests)
            reply = self.reply(n)
            async with self.arrived:
                self.requests.append(Received(headers, body))
                self.arrived.notify_all()
            if reply.hold is not None:
                await reply.hold.wait()
            if reply.delay_s:
                await asyncio.sleep(reply.delay_s)
            if reply.endless_body:
                writer.write(
                    f"HTTP/1.1 {reply.status} X\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
                )
                chunk = b"x" * 65536
                framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
                # Bounded so a broken client cannot keep the test running forever.
                while self.body_bytes_sent < 512 * 1024 * 1024:
                    writer.write(framed)
                    await writer.drain()
                    self.body_bytes_sent += len(chunk)
            else:
                text = b"ok"
                extra = f"Location: {reply.location}\r\n" if reply.location else ""
                writer.write(
                    f"HTTP/1.1 {reply.status} X\r\nContent-Length: {len(text)}\r\n{extra}"
                    "Connection: close\r\n\r\n".encode()
                    + text
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.in_flight -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


@dataclass
class Running:
    runtime: WebhooksRuntime
    bus: InProcessBus
    stub: webhooks_pb2_grpc.WebhooksAsyncStub
    published: list[Event]

    async def create(
        self,
        url: str,
        *,
        caller: Caller = ALICE,
        id: str = "we_1",
        events: tuple[str, ...] = ("*",),
    ) -> webhooks_pb2.EndpointWithSecret:
        return await self.stub.CreateEndpoint(
            webhooks_pb2.CreateEndpointRequest(id=id, url=url, events=list(events)),
            **caller_options(caller, 10),
        )

    async def deliveries(
        self, endpoint_id: str = "we_1", caller: Caller = ALICE
    ) -> list[webhooks_pb2.Delivery]:
        page = await self.stub.ListDeliveries(
            webhooks_pb2.ListDeliveriesRequest(endpoint_id=endpoint_id, limit=100),
            **caller_options(caller, 10),
        )
        return list(page.data)

    async def publish(self, event: Event) -> None:
        await self.bus.publish(TOPIC_PAYMENTS, event)


StartWebhooks = Callable[..., Awaitable[Running]]


@pytest.fixture
async def start_webhooks(tmp_path: Path) -> AsyncIterator[StartWebhooks]:
    """Start the webhooks service with settings overrides; stopped after the test."""
    stack = contextlib.AsyncExitStack()

    async def start(
        *,
        database_url: str | None = None,
        clock: Clock | None = None,
        resolver: Any = None,
        jitter: Callable[[], float] = lambda: 1.0,
        environment: str = "development",
        **overrides: Any,
    ) -> Running:
        webhooks = {
            "database_url": database_url or f"sqlite+aiosqlite:///{tmp_path / 'webhooks.db'}",
            "listen": f"127.0.0.1:{free_port()}",
            "allow_private_addresses": True,
            "retry_base_s": 0.05,
            "poll_interval_s": 0.05,
            "request_timeout_s": 5,
            **overrides,
        }
        settings = Settings(var_dir=tmp_path, environment=environment, webhooks=webhooks)
        await app.migrate(settings)
        bus = InProcessBus()
        published: list[Event] = []

        async def collect(event: Event) -> None:
            published.append(event)

        from paymesh.contracts.events import TOPIC_WEBHOOKS

        bus.subscribe(TOPIC_WEBHOOKS, "test", collect)
        runtime = app.create(settings, bus=bus, clock=clock, resolver=resolver, jitter=jitter)
        await bus.start()
        await runtime.start()
        channel: grpc.aio.Channel = open_channel(f"127.0.0.1:{runtime.port}")
        stack.push_async_callback(bus.stop)
        stack.push_async_callback(runtime.stop)
        stack.push_async_callback(channel.close)
        return Running(runtime, bus, webhooks_pb2_grpc.WebhooksStub(channel), published)  # type: ignore[arg-type]

    yield start
    await stack.aclose()


def payment_event(
    n: int = 1, *, tenant: str = "ten_alice", type: str = "payment.succeeded"
) -> Event:
    return Event(
        id=f"evt_pay_{n}_{type}",
        source="/paymesh/payments",
        type=type,
        subject=f"pay_{n}",
        time="2026-01-01T00:00:00Z",
        tenant=tenant,
        data={"id": f"pay_{n}", "object": "payment", "amount": 1000, "currency": "USD"},
    )


async def until(predicate: Callable[[], Awaitable[bool]], timeout_s: float = 20) -> None:
    """Wait until `predicate()` holds, checking every 20 ms; fail after `timeout_s`."""
    async with asyncio.timeout(timeout_s):
        while not await predicate():
            await asyncio.sleep(0.02)
