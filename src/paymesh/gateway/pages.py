"""The REST API's plain reads, written once: a page of a list, and one object by id.

A list route takes ``limit`` and ``starting_after`` (:func:`page_args`) and answers a
page model (``data`` and ``has_more``, :func:`page_out`). A resource whose reads are
nothing more than "ask the service, render what it answers" is one :class:`Reads`
row; :func:`declare_reads` makes its two GET routes. Other reads are declared through
:class:`Gets`: a page or one object, with the problems such a read documents.

(No ``from __future__ import annotations`` here: FastAPI reads the query parameters'
annotations at run time, and those are built per route.)
"""

import inspect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Query
from pydantic import BaseModel
from starlette.responses import Response

from paymesh.gateway.deps import json_out
from paymesh.gateway.routing import Handler, Routes
from paymesh.platform.identity import Caller

__all__ = [
    "GET_PROBLEMS",
    "ITEMS_PROBLEMS",
    "LIST_PROBLEMS",
    "Gets",
    "PageArgs",
    "Reads",
    "declare_reads",
    "page_args",
    "page_out",
]

# What a list route documents it may answer besides its page.
LIST_PROBLEMS = (401, 403, 422, 503)
# What a read of one object documents it may answer besides the object.
GET_PROBLEMS = (401, 403, 404, 503)
# What a list of an object's items (e.g. an account's entries) documents besides its page.
ITEMS_PROBLEMS = (401, 403, 404, 422, 503)


@dataclass(frozen=True)
class PageArgs:
    """The page a list route was asked for: at most `limit` items after `starting_after`."""

    limit: int
    starting_after: str  # "" for the first page (proto3's absent string)


def page_args(cursor: str, *, limit: int = 10, max_length: int = 64) -> Any:
    """The `limit` and `starting_after` query parameters as one dependency (use it as
    ``Annotated[PageArgs, page_args(...)]``): `limit` 1-100 (`limit` by default),
    `starting_after` described as `cursor`."""

    async def args(
        limit: Annotated[int, Query(ge=1, le=100, description="Page size, 1-100.")] = limit,
        starting_after: Annotated[
            str | None, Query(max_length=max_length, description=cursor)
        ] = None,
    ) -> PageArgs:
        return PageArgs(limit=limit, starting_after=starting_after or "")

    return Depends(args)


def page_out(
    model: type[BaseModel], view: Callable[[Any], BaseModel], items: Iterable[Any], has_more: bool
) -> Response:
    """A page of `items`, each rendered by `view`, as `model` (data, has_more)."""
    return json_out(model(data=[view(item) for item in items], has_more=has_more))


@dataclass(frozen=True)
class Gets:
    """A feature's GET routes, with the `scope` they need stated once."""

    routes: Routes
    scope: str

    def get(
        self,
        path: str,
        model: type[BaseModel],
        *,
        summary: str,
        tag: str | None = None,
        problems: Sequence[int] = GET_PROBLEMS,
    ) -> Callable[[Handler], Handler]:
        """Declare ``GET path`` answering `model` (a page documents ``LIST_PROBLEMS``)."""
        return self.routes.get(
            path,
            scope=self.scope,
            tag=tag,
            summary=summary,
            response_model=model,
            problems=problems,
        )


@dataclass(frozen=True)
class Reads:
    """A resource's two plain reads: ``GET path`` (a page of the tenant's, via the
    `list` RPC) and ``GET path/{param}`` (one of them by id, via the `get` RPC).

    `names`, `summaries` and `docs` are (list, get): the handlers' names (the
    OpenAPI operation ids), the operations' summaries and descriptions.
    """

    path: str
    param: str
    scope: str
    tag: str | None
    client: Any  # the service client's dependency (e.g. deps.Payments)
    names: tuple[str, str]
    summaries: tuple[str, str]
    docs: tuple[str, str]
    cursor: str  # what `starting_after` is, for the list's documentation
    models: tuple[type[BaseModel], type[BaseModel]]  # (page, one)
    view: Callable[[Any], BaseModel]
    list: Callable[[Any], Any]  # stub -> the list RPC
    list_request: Callable[..., Any]  # (limit=, starting_after=) -> its request
    items: str  # the list answer's repeated field
    get: Callable[[Any], Any]  # stub -> the get RPC
    get_request: Callable[..., Any]  # (id=) -> its request
    get_problems: Sequence[int] = GET_PROBLEMS


def declare_reads(routes: Routes, r: Reads) -> None:
    """Declare `r`'s list route, then its get route, on `routes`."""
    page_model, one_model = r.models

    async def list_handler(caller: Caller, client: Any, page: PageArgs) -> Response:
        request = r.list_request(limit=page.limit, starting_after=page.starting_after)
        found = await client.call(r.list(client.stub), request, caller)
        return page_out(page_model, r.view, getattr(found, r.items), found.has_more)

    async def get_handler(caller: Caller, client: Any, **path: str) -> Response:
        one = await client.call(r.get(client.stub), r.get_request(id=path[r.param]), caller)
        return json_out(r.view(one))

    _sign(
        list_handler,
        r.names[0],
        r.docs[0],
        _param("page", Annotated[PageArgs, page_args(r.cursor)]),
        r.client,
    )
    _sign(get_handler, r.names[1], r.docs[1], _param(r.param, str), r.client, first=True)
    gets = Gets(routes, r.scope)
    declare_list = gets.get(
        r.path, page_model, summary=r.summaries[0], tag=r.tag, problems=LIST_PROBLEMS
    )
    declare_list(list_handler)
    one_path = f"{r.path}/{{{r.param}}}"
    declare_get = gets.get(
        one_path, one_model, summary=r.summaries[1], tag=r.tag, problems=r.get_problems
    )
    declare_get(get_handler)


def _param(name: str, annotation: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation)


def _sign(
    handler: Callable[..., Any],
    name: str,
    doc: str,
    own: inspect.Parameter,
    client: Any,
    *,
    first: bool = False,
) -> None:
    """Give a generated handler the name, docstring and signature FastAPI reads: `own`
    (a path parameter first, or the page last), the caller and the service client."""
    params = [_param("caller", Caller), _param("client", client)]
    handler.__name__ = handler.__qualname__ = name
    handler.__doc__ = doc
    handler.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [own, *params] if first else [*params, own]
    )
