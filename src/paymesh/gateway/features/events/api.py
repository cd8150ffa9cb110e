"""REST routes for the tenant's events."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from paymesh.contracts.payments.v1 import payments_pb2 as ppb
from paymesh.gateway.deps import gateway, json_out, scoped
from paymesh.gateway.features.events.schemas import EventList, EventOut
from paymesh.gateway.features.events.views import event_view
from paymesh.gateway.problems import problem_responses
from paymesh.platform.identity import Caller

__all__ = ["router"]

router = APIRouter()


_READ_ERRORS = problem_responses(401, 403, 404, 503)


@router.get(
    "/v1/events",
    tags=["events"],
    summary="List events",
    response_model=EventList,
    responses=problem_responses(401, 403, 422, 503),
)
async def list_events(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size, 1-100.")] = 10,
    starting_after: Annotated[
        str | None, Query(max_length=64, description="The last event id of the previous page.")
    ] = None,
    caller: Caller = scoped("GET", "/v1/events"),
) -> Response:
    """The tenant's events, newest first: the CloudEvents that webhooks deliver."""
    page = await gateway(request).payments.list_events(
        ppb.ListEventsRequest(limit=limit, starting_after=starting_after or ""), caller=caller
    )
    return json_out(EventList(data=[event_view(e) for e in page.events], has_more=page.has_more))


@router.get(
    "/v1/events/{event_id}",
    tags=["events"],
    summary="Get an event",
    response_model=EventOut,
    responses=_READ_ERRORS,
)
async def get_event(
    event_id: str,
    request: Request,
    caller: Caller = scoped("GET", "/v1/events/{event_id}"),
) -> Response:
    """An event of the tenant (another tenant's is a 404)."""
    event = await gateway(request).payments.get_event(
        ppb.GetEventRequest(id=event_id), caller=caller
    )
    return json_out(event_view(event))
