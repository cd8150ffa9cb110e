"""An HTTP server (uvicorn) run in the background of the process's event loop: the
gateway's public API and the admin listener, started and stopped the same way."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator, Sequence

import uvicorn

from paymesh.platform.loops import Background

__all__ = ["HttpServer"]

# How long requests in flight get to finish when the server stops.
STOP_GRACE_S = 30.0


class _Uvicorn(uvicorn.Server):
    """uvicorn without its signal handlers: the process owner stops it via stop()."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class HttpServer:
    """Serves `config`'s app until :meth:`stop`; :meth:`start` returns once it listens."""

    def __init__(self, config: uvicorn.Config, *, name: str) -> None:
        self._server = _Uvicorn(config)
        self._background = Background(name)
        self.name = name

    async def start(self, sockets: Sequence[socket.socket] | None = None) -> int:
        """Start serving (on `sockets` when given); return the port it listens on.

        Raises RuntimeError when the server ends before it listens (an address in use).
        """
        serving = self._background.spawn(
            self._server.serve(sockets=list(sockets) if sockets else None)
        )
        while not self._server.started:
            if serving.done():
                await self.stop()
                raise RuntimeError(f"{self.name} did not start")
            await asyncio.sleep(0.01)
        return int(self._server.servers[0].sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Finish the requests in flight (at most STOP_GRACE_S), then stop serving."""
        self._server.should_exit = True
        await self._background.stop(grace_s=STOP_GRACE_S)
