"""Request ids and the access log, at the outer edge of the gateway.

Every request gets a request id: the client's ``X-Request-Id`` when it is
1-128 visible ASCII characters (and not a token), a new one (uuid4 hex)
otherwise. It is echoed in the ``X-Request-Id`` header of every answer,
problems included, is part of every log line written while the request is
handled (:func:`~paymesh.platform.logging.bind_request_id`), and goes to the
services in the ``x-request-id`` gRPC metadata of each call.

Each request then writes one ``http_request`` line: method, route template
(never the raw path or query), status, duration_ms, client_id (once a token
or client credentials authenticated it) and the request id; trace_id while
a span is active. Never a header, body or query string.
"""

from __future__ import annotations

import time
import uuid

from starlette.types import Message, Receive, Scope, Send

from paymesh.gateway.asgi import HttpMiddleware
from paymesh.platform.logging import (
    bind_request_id,
    get_logger,
    reset_request_id,
    valid_request_id,
)

__all__ = ["CLIENT_ID_KEY", "HEADER", "RequestLogMiddleware", "set_client_id"]

log = get_logger("paymesh.gateway.access")

HEADER = b"x-request-id"
# Where authentication leaves the client id for the access log (the request's state).
CLIENT_ID_KEY = "client_id"


def set_client_id(scope: Scope, client_id: str) -> None:
    """Name the authenticated API client in this request's access log line."""
    scope.setdefault("state", {})[CLIENT_ID_KEY] = client_id


def _incoming(scope: Scope) -> str | None:
    for name, value in scope.get("headers") or ():
        if name == HEADER:
            return valid_request_id(value)
    return None


def _route(scope: Scope) -> str | None:
    """The template of the route that answered (``/v1/payments/{payment_id}``), if any."""
    route = scope.get("route")
    if route is None:
        return None
    template = getattr(route, "path", None)
    return template if isinstance(template, str) else None


class RequestLogMiddleware(HttpMiddleware):
    """Give each request an id (kept from X-Request-Id or made), echo it, log the request."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = _incoming(scope) or uuid.uuid4().hex
        header = (HEADER, request_id.encode())
        status = 0

        async def _send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        token = bind_request_id(request_id)
        started = time.perf_counter()
        try:
            await self.app(scope, receive, _send)
        finally:
            log.info(
                "http_request",
                method=scope["method"],
                route=_route(scope),
                # 0: the client went away (or the app failed) before any answer started.
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 3),
                client_id=scope.get("state", {}).get(CLIENT_ID_KEY),
            )
            reset_request_id(token)
