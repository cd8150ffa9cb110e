"""Each REST route declared once, in the decorator on its handler: its method and path,
the scope it needs, whether it moves money, its answer and the problems it documents.

A handler takes ``caller: Caller``; the declaration makes that the caller a bearer token
proves, holding the route's scope (its OpenAPI ``security`` too). A handler that takes
``keyed: KeyedRequest`` accepts an ``Idempotency-Key`` (required when the route moves
money, which also makes it wait for admission); its body runs at most once per key
and derives the ids of what it creates from the key (``keyed.object_id("pay")``).
What the rest of the gateway needs about routes (the scopes, the money-moving paths)
is derived from these declarations: see :mod:`paymesh.gateway.features`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

from fastapi import APIRouter, Request, Security
from starlette.responses import Response

from paymesh.gateway.deps import IdempotencyKey, authorize, keyed
from paymesh.gateway.problems import problem_responses, with_account_problems

__all__ = ["Route", "Routes"]

Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Response]])

_REQUEST = "_keyed_request"
_KEY = "idempotency_key"


@dataclass(frozen=True)
class Route:
    """One REST route as declared (scope None: open to anyone, e.g. the token endpoint)."""

    method: str
    path: str
    scope: str | None
    moves_money: bool = False


class Routes:
    """A feature's routes: a FastAPI router, and the declaration of each of its routes."""

    def __init__(self, *, tag: str | None = None) -> None:
        self.router = APIRouter()
        self.declared: list[Route] = []
        self._tag = tag

    def get(self, path: str, **declared: Any) -> Callable[[Handler], Handler]:
        """Declare a GET route (see :meth:`route`)."""
        return self.route("GET", path, **declared)

    def post(self, path: str, **declared: Any) -> Callable[[Handler], Handler]:
        """Declare a POST route (see :meth:`route`)."""
        return self.route("POST", path, **declared)

    def put(self, path: str, **declared: Any) -> Callable[[Handler], Handler]:
        """Declare a PUT route (see :meth:`route`)."""
        return self.route("PUT", path, **declared)

    def delete(self, path: str, **declared: Any) -> Callable[[Handler], Handler]:
        """Declare a DELETE route (see :meth:`route`)."""
        return self.route("DELETE", path, **declared)

    def route(
        self,
        method: str,
        path: str,
        *,
        scope: str | None,
        summary: str,
        problems: Sequence[int] = (),
        account_problems: bool = False,
        moves_money: bool = False,
        status_code: int | None = None,
        response_model: Any = None,
        tag: str | None = None,
    ) -> Callable[[Handler], Handler]:
        """Declare the route `handler` answers; `problems` are the error statuses it
        documents (`account_problems`: its 404 and 422 also say why for accounts)."""
        route = Route(method, path, scope, moves_money)
        responses = problem_responses(*problems)
        if account_problems:
            responses = with_account_problems(responses)

        label = tag or self._tag
        tags: list[str | Enum] | None = [label] if label else None

        def declare(handler: Handler) -> Handler:
            endpoint = _endpoint(handler, route)
            self.declared.append(route)
            self.router.add_api_route(
                path,
                endpoint,
                methods=[method],
                tags=tags,
                summary=summary,
                status_code=status_code,
                response_model=response_model,
                responses=responses,
            )
            return handler

        return declare


def _endpoint(handler: Callable[..., Awaitable[Response]], route: Route) -> Callable[..., Any]:
    """The FastAPI endpoint of a declared handler: its caller authorised with the
    route's scope, and a keyed handler's body run once per Idempotency-Key."""
    signature = inspect.signature(handler)
    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in signature.parameters.values()]
    names = {p.name for p in params}
    if route.scope is not None:
        if "caller" not in names:
            raise TypeError(f"{route.method} {route.path}: a scoped handler takes `caller`")
        authorized = Security(authorize, scopes=[route.scope])
        params = [p.replace(default=authorized) if p.name == "caller" else p for p in params]
    if "keyed" not in names:
        return _with_signature(handler, handler, params)
    if "caller" not in names or any(p.annotation in ("Request", Request) for p in params):
        raise TypeError(f"{route.method} {route.path}: a keyed handler takes `caller`, no Request")
    params = [p for p in params if p.name != "keyed"] + [
        inspect.Parameter(_REQUEST, inspect.Parameter.KEYWORD_ONLY, annotation=Request),
        inspect.Parameter(
            _KEY, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=IdempotencyKey
        ),
    ]

    async def run_keyed(**values: Any) -> Response:
        request, key = values.pop(_REQUEST), values.pop(_KEY)
        req = await keyed(request, values["caller"], key, moves_money=route.moves_money)
        return await req.run(functools.partial(handler, **values, keyed=req))

    return _with_signature(run_keyed, handler, params)


def _with_signature(
    call: Callable[..., Any], handler: Callable[..., Any], params: list[inspect.Parameter]
) -> Callable[..., Any]:
    @functools.wraps(handler)
    async def endpoint(**values: Any) -> Any:
        return await call(**values)

    endpoint.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    return endpoint
