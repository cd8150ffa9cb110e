"""The admin HTTP listener, apart from the public API: ``/metrics``, ``/healthz``, ``/readyz``.

* ``/metrics``: every metric of this process (prometheus-client's exposition of the
  default registry; OpenMetrics and gzip when the scraper asks for them).
* ``/healthz``: 200 while the process runs (liveness: nothing is checked).
* ``/readyz``: 200 when every service of this listener can serve, else 503; the JSON
  body says, per service, which check failed and why. Answers come from each
  service's :class:`~paymesh.platform.health.Readiness`, refreshed in the background.

One listener per address: the embedded platform's five services share one
(``127.0.0.1:9100`` by default); a ``paymesh serve`` process has its own. It runs
on uvicorn inside the process's event loop.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Sequence
from typing import Any

import uvicorn
from prometheus_client import make_asgi_app

from paymesh.platform.health import Readiness
from paymesh.platform.http_server import HttpServer
from paymesh.platform.logging import get_logger

__all__ = ["AdminServer", "split_listen"]

log = get_logger(__name__)

Scope = dict[str, Any]
Receive = Any
Send = Any

_JSON = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
_TEXT = [(b"content-type", b"text/plain; charset=utf-8"), (b"cache-control", b"no-store")]


def split_listen(listen: str) -> tuple[str, int]:
    """("host", port) of "host:port" (IPv6 in brackets: "[::1]:9100")."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"not host:port: {listen!r}")
    return host.strip("[]"), int(port)


class AdminServer:
    """One admin listener on `listen`, reporting the readiness of `services`."""

    def __init__(self, listen: str, services: Sequence[str]) -> None:
        self.listen = listen
        self.services = tuple(services)
        self._readiness: dict[str, Readiness] = {}
        self._metrics = make_asgi_app()
        self._server: HttpServer | None = None
        self.port = 0

    def attach(self, readiness: Readiness) -> None:
        """Report `readiness` for its service (until then: not started)."""
        self._readiness[readiness.service] = readiness

    def report(self) -> tuple[bool, dict[str, Any]]:
        """(ready, the body of /readyz)."""
        services: dict[str, Any] = {}
        for name in self.services:
            readiness = self._readiness.get(name)
            failed = (
                dict(readiness.failures) if readiness is not None else {"started": "not started"}
            )
            services[name] = {"ready": not failed, "failed": failed}
        ready = all(s["ready"] for s in services.values())
        return ready, {"status": "ready" if ready else "not_ready", "services": services}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if scope["method"] not in ("GET", "HEAD"):
            await _answer(send, 405, b"method not allowed\n", _TEXT)
        elif path == "/metrics":
            await self._metrics(scope, receive, send)
        elif path == "/healthz":
            await _answer(send, 200, b"ok\n", _TEXT)
        elif path == "/readyz":
            ready, body = self.report()
            await _answer(send, 200 if ready else 503, json.dumps(body).encode(), _JSON)
        else:
            await _answer(send, 404, b"not found: /metrics, /healthz, /readyz\n", _TEXT)

    async def start(self) -> int:
        """Bind and serve; return the bound port. Fails when the address is taken."""
        host, port = split_listen(self.listen)
        config = uvicorn.Config(
            self,
            host=host,
            port=port,
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            date_header=False,
        )
        # Bound here, not by uvicorn: a taken address is an OSError for the caller
        # (uvicorn would raise SystemExit from inside its task).
        sock = _bind(host, port)
        self.port = int(sock.getsockname()[1])
        self._server = HttpServer(config, name=f"the admin listener on {self.listen}")
        await self._server.start([sock])
        log.info("admin_listening", address=f"{host}:{self.port}", services=self.services)
        return self.port

    async def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            await self._server.stop()
        self._server = None


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        where = f"the admin listener cannot listen on {host}:{port}: {exc.strerror}"
        raise OSError(exc.errno, where) from exc
    sock.setblocking(False)
    return sock


async def _answer(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
