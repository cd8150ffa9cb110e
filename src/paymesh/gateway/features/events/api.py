"""REST routes for the tenant's events."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from starlette.responses import Response

from paymesh.contracts.payments.v1 import payments_pb2 as ppb
from paymesh.gateway.deps import Payments, json_out
from paymesh.gateway.domain import PAYMENTS_READ
from paymesh.gateway.features.events.schemas import EventList, EventOut
from paymesh.gateway.features.events.views import event_view
from paymesh.gateway.routing import Routes
from paymesh.platform.identity import Caller

__all__ = ["routes"]

routes = Routes()

_READ_ERRORS = (401, 403, 404, 503)


@routes.get(
    "/v1/events",
    scope=PAYMENTS_READ,
    tag="events",
    summary="List events",
    response_model=EventList,
    problems=(401, 403, 422, 503),
)
async def list_events(
    caller: Caller,
    payments: Payments,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size, 1-100.")] = 10,
    starting_after: Annotated[
        str | None, Query(max_length=64, description="The last event id of the previous page.")
    ] = None,
) -> Response:
    """The tenant's events, newest first: the CloudEvents that webhooks deliver."""
    page = await payments.call(
        payments.stub.ListEvents,
        ppb.ListEventsRequest(limit=limit, starting_after=starting_after or ""),
        caller,
    )
    return json_out(EventList(data=[event_view(e) for e in page.events], has_more=page.has_more))


@routes.get(
    "/v1/events/{event_id}",
    scope=PAYMENTS_READ,
    tag="events",
    summary="Get an event",
    response_model=EventOut,
    problems=_READ_ERRORS,
)
async def get_event(
    event_id: str,
    caller: Caller,
    payments: Payments,
) -> Response:
    """An event of the tenant (another tenant's is a 404)."""
    event = await payments.call(payments.stub.GetEvent, ppb.GetEventRequest(id=event_id), caller)
    return json_out(event_view(event))
