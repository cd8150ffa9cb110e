"""The gateway's RED metrics: every request timed by route template, method and status.

A pure ASGI middleware, outermost of the gateway's own (so a 413, a 429, a 504 or
a 500 made by the inner ones is counted as the client saw it). The route is the
template the router matched (``/v1/payments/{payment_id}``), never the raw path:
labels stay bounded whatever clients send. A request no route matches is
``unmatched``; a method outside HTTP's usual ones is ``other``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from time import perf_counter
from typing import Any

from prometheus_client import Histogram
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paymesh.gateway.asgi import HttpMiddleware
from paymesh.platform.metrics import HTTP_SERVER_DURATION

__all__ = ["UNMATCHED", "HttpMetricsMiddleware", "RouteTemplates"]

UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RouteTemplates:
    """The template of the route that handled (or would have handled) a request.

    The router leaves the matched route in the scope (and itself: a request it
    routed to no route is unmatched). A request answered before routing (a body
    too large, say) is matched here against the API's templates, compiled on
    first use from `templates` (literal ones before those with parameters).
    """

    def __init__(self, templates: Callable[[], Iterable[str]]) -> None:
        self._templates = templates
        self._compiled: list[tuple[re.Pattern[str], str]] | None = None

    def __call__(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is not None:
            path = getattr(route, "path", None)
            return path if isinstance(path, str) and path else UNMATCHED
        if "router" in scope:
            return UNMATCHED
        if self._compiled is None:
            ordered = sorted(self._templates(), key=lambda t: (t.count("{"), t))
            self._compiled = [(compile_path(t)[0], t) for t in ordered]
        path = scope["path"]
        for regex, template in self._compiled:
            if regex.match(path):
                return template
        return UNMATCHED


class HttpMetricsMiddleware(HttpMiddleware):
    """Observe ``paymesh_http_server_request_duration_seconds`` for every HTTP request."""

    def __init__(
        self, app: ASGIApp, *, templates: Callable[[], Iterable[str]], service: str
    ) -> None:
        """`templates`: the API's route templates (asked once, at the first request
        answered before routing)."""
        super().__init__(app)
        self._route = RouteTemplates(templates)
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

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
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
            self._child(method, self._route(scope), status).observe(perf_counter() - started)
