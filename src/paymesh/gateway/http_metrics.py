"""The gateway's RED metrics: every request timed by route template, method and status.

A pure ASGI middleware, outermost of the gateway's own (so a 413, a 429, a 504 or
a 500 made by the inner ones is counted as the client saw it). The route is the
template the router matched (``/v1/payments/{payment_id}``), never the raw path:
labels stay bounded whatever clients send. A request no route matches is
``unmatched``; a method outside HTTP's usual ones is ``other``.
"""

from __future__ import annotations

from collections.abc import Sequence
from time import perf_counter
from typing import Any

from prometheus_client import Histogram
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paymesh.platform.metrics import HTTP_SERVER_DURATION

__all__ = ["UNMATCHED", "HttpMetricsMiddleware", "route_template"]

UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_template(scope: Scope, routes: Sequence[BaseRoute]) -> str:
    """The template of the route that handled (or would handle) this request.

    The router leaves the matched route in the scope (and itself: a request it
    routed without a route is unmatched); a request answered before routing (a
    body too large, say) is matched here against `routes`.
    """
    route = scope.get("route")
    if route is None and "router" not in scope:
        for candidate in routes:
            match, _ = candidate.matches(scope)
            if match is not Match.NONE:
                route = candidate
                break
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


class HttpMetricsMiddleware:
    """Observe ``paymesh_http_server_request_duration_seconds`` for every HTTP request."""

    def __init__(self, app: ASGIApp, *, routes: Sequence[BaseRoute], service: str) -> None:
        self.app = app
        self._routes = routes
        self._service = service
        # One histogram child per (method, route, status), made on first use.
        self._children: dict[tuple[str, str, int], Histogram] = {}

    def _child(self, method: str, route: str, status: int) -> Histogram:
        key = (method, route, status)
        child = self._children.get(key)
        if child is None:
            child = HTTP_SERVER_DURATION.labels(self._service, method, route, str(status))
            self._children[key] = child
        return child

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        status = 500  # what the server answers when the app raises before responding

        async def _send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, _send)
        finally:
            method: Any = scope["method"]
            if method not in _METHODS:
                method = "other"
            route = route_template(scope, self._routes)
            self._child(method, route, status).observe(perf_counter() - started)
