"""A merchant's webhook receiver for the end-to-end tests: a real HTTP/1.1 server
on 127.0.0.1 that records every request and answers 200.

(A plain module, not a test file: the embedded and distributed tests share it.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Received", "Receiver"]


@dataclass(frozen=True)
class Received:
    """One request the receiver got: its headers (lower-case names) and raw body."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class Receiver:
    """Listens on a free loopback port; `url` is where deliveries should go."""

    requests: list[Received] = field(default_factory=list)
    port: int = 0
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    _server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/paymesh"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    async def wait_for(self, count: int, timeout_s: float = 60) -> list[Received]:
        """The first `count` requests, once they have arrived (TimeoutError otherwise)."""
        async with asyncio.timeout(timeout_s):
            async with self._arrived:
                await self._arrived.wait_for(lambda: len(self.requests) >= count)
        return self.requests[:count]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *lines = head.decode("latin-1").split("\r\n")
            method, path, _ = request_line.split(" ", 2)
            headers: dict[str, str] = {}
            for line in lines:
                name, sep, value = line.partition(":")
                if sep:
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            async with self._arrived:
                self.requests.append(Received(method, path, headers, body))
                self._arrived.notify_all()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
