"""The REST API's writes, declared with what a feature's writes share stated once.

A feature's write routes need the same scope, document the same problems and either
all move money or none does: one :class:`Writes` says so, and declares each route as
a creation (:meth:`Writes.create`, answered 201) or an action on an object
(:meth:`Writes.action`). A creation's handler answers with :func:`create`: the new
object's view and where to read it again (its ``Location``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import grpc.aio
from pydantic import BaseModel
from starlette.responses import Response

from paymesh.gateway.clients import Client
from paymesh.gateway.deps import json_out
from paymesh.gateway.routing import Handler, Routes
from paymesh.platform.identity import Caller

__all__ = ["Writes", "create"]


class _Identified(Protocol):
    @property
    def id(self) -> str: ...


Req = TypeVar("Req")
Made = TypeVar("Made", bound=_Identified)


@dataclass(frozen=True)
class Writes:
    """A feature's write routes: the `scope` they need, the `problems` they document
    and whether they move money."""

    routes: Routes
    scope: str
    problems: Sequence[int]
    moves_money: bool = False

    def create(
        self,
        path: str,
        model: type[BaseModel],
        *,
        summary: str,
        tag: str | None = None,
        account_problems: bool = False,
    ) -> Callable[[Handler], Handler]:
        """Declare ``POST path`` creating an object, answered 201 as `model`."""
        return self._post(
            path,
            model,
            summary=summary,
            tag=tag,
            status_code=201,
            account_problems=account_problems,
        )

    def action(
        self, path: str, model: type[BaseModel], *, summary: str, tag: str | None = None
    ) -> Callable[[Handler], Handler]:
        """Declare ``POST path`` acting on an object, answered as `model`."""
        return self._post(path, model, summary=summary, tag=tag)

    def _post(
        self, path: str, model: type[BaseModel], **declared: Any
    ) -> Callable[[Handler], Handler]:
        return self.routes.post(
            path,
            scope=self.scope,
            moves_money=self.moves_money,
            response_model=model,
            problems=self.problems,
            **declared,
        )


async def create(
    client: Client[Any],
    method: grpc.aio.UnaryUnaryMultiCallable[Req, Made],
    request: Req,
    caller: Caller,
    *,
    view: Callable[[Made], BaseModel],
    at: str,
) -> Response:
    """Create an object through `method`: 201 with its `view`, and ``Location: at/{id}``."""
    made = await client.call(method, request, caller)
    return json_out(view(made), 201, headers={"Location": f"{at}/{made.id}"})
