"""The console's webhook pages: the tenant's endpoints (create, rotate the signing secret,
disable, enable, delete), an endpoint's delivery log with every attempt, and resending an event.
All need ``webhooks:write``, as the REST routes do; creating, rotating, enabling and
deleting endpoints is an admin's (support agents resend). A new or rotated secret is shown
once, on the page that answers the form, and never stored by the console."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError
from starlette.responses import Response

from paymesh.contracts.events import PUBLIC_EVENT_TYPES
from paymesh.contracts.webhooks.v1 import webhooks_pb2 as wpb
from paymesh.gateway.audit import record
from paymesh.gateway.console.core import PAGE, Console, View
from paymesh.gateway.domain import ADMIN, derive_id
from paymesh.gateway.features.webhooks.schemas import CreateWebhookEndpointIn
from paymesh.gateway.features.webhooks.views import delivery_view, endpoint_view, with_secret

__all__ = ["endpoint", "endpoint_action", "endpoints"]


def _dump(model: Any) -> dict[str, Any]:
    out: dict[str, Any] = model.model_dump(mode="json")
    return out


async def endpoints(c: Console, view: View) -> Response:
    """The tenant's endpoints (GET), or a new one (POST: its secret shown once)."""
    hooks, request = c.gw.webhooks, view.request
    error = ""
    if view.form is not None:
        if not view.can(ADMIN):
            return c.error(request, 403, "your role does not allow this", view)
        fields = {
            "url": str(view.form.get("url", "")).strip(),
            "events": [str(e) for e in view.form.getlist("events")] or ["*"],
            "description": str(view.form.get("description", "")).strip() or None,
        }
        try:
            body = CreateWebhookEndpointIn.model_validate(fields)
        except ValidationError as exc:
            error = "; ".join(str(e["msg"]) for e in exc.errors())[:500]
        else:
            key = str(view.form.get("key", ""))[:64] or "-"
            made = await hooks.call(
                hooks.stub.CreateEndpoint,
                wpb.CreateEndpointRequest(
                    id=derive_id(
                        "we", tenant_id=view.caller.tenant_id, key=key, path="/console/webhooks"
                    ),
                    url=body.url,
                    events=body.events,
                    description=body.description or "",
                ),
                view.caller,
            )
            await _audit(
                c, view, "console.webhook_endpoint_created", made.endpoint.id,
                {"host": urlsplit(body.url).hostname or ""},
            )  # fmt: skip
            return _with_secret(c, view, _dump(with_secret(made)), "created")
    after = request.query_params.get("after", "")[:64]
    found = await hooks.call(
        hooks.stub.ListEndpoints,
        wpb.ListEndpointsRequest(limit=PAGE, starting_after=after),
        view.caller,
    )
    rows = [_dump(endpoint_view(e)) for e in found.data]
    more = rows[-1]["id"] if found.has_more and rows else ""
    return c.render(
        request, "webhooks.html", view=view, status=422 if error else 200, rows=rows,
        more=more, error=error, key=str(uuid.uuid4()), types=sorted(PUBLIC_EVENT_TYPES),
    )  # fmt: skip


def _with_secret(c: Console, view: View, made: dict[str, Any], what: str) -> Response:
    return c.render(view.request, "webhook_secret.html", view=view, e=made, what=what)


async def endpoint(c: Console, view: View) -> Response:
    """An endpoint and its delivery log, newest first, each attempt shown."""
    hooks, request = c.gw.webhooks, view.request
    endpoint_id = request.path_params["endpoint_id"]
    found = await hooks.call(
        hooks.stub.GetEndpoint, wpb.GetEndpointRequest(id=endpoint_id), view.caller
    )
    after = request.query_params.get("after", "")[:64]
    log = await hooks.call(
        hooks.stub.ListDeliveries,
        wpb.ListDeliveriesRequest(endpoint_id=endpoint_id, limit=PAGE, starting_after=after),
        view.caller,
    )
    rows = [_dump(delivery_view(d)) for d in log.data]
    more = rows[-1]["id"] if log.has_more and rows else ""
    return c.render(
        request, "webhook.html", view=view, e=_dump(endpoint_view(found)), rows=rows, more=more
    )


async def endpoint_action(c: Console, view: View) -> Response:
    """POST: ``rotate`` the secret (shown once), ``enable``, ``delete``, or ``resend`` an
    event (``event_id``) to the endpoint."""
    hooks, request = c.gw.webhooks, view.request
    endpoint_id, action = request.path_params["endpoint_id"], request.path_params["action"]
    form = view.form
    if form is None or action not in ("rotate", "enable", "disable", "delete", "resend"):
        return c.error(request, 404, "no such page", view)
    if action != "resend" and not view.can(ADMIN):  # managing endpoints is an admin's
        return c.error(request, 403, "your role does not allow this", view)
    if action == "rotate":
        made = await hooks.call(
            hooks.stub.RotateSecret, wpb.RotateSecretRequest(id=endpoint_id), view.caller
        )
        await _audit(c, view, "console.webhook_secret_rotated", endpoint_id)
        return _with_secret(c, view, _dump(with_secret(made)), "rotated")
    if action == "enable":
        await hooks.call(
            hooks.stub.EnableEndpoint, wpb.EnableEndpointRequest(id=endpoint_id), view.caller
        )
        await _audit(c, view, "console.webhook_endpoint_enabled", endpoint_id)
        return c.redirect(request, f"/webhooks/{endpoint_id}", done="enabled")
    if action == "disable":
        await hooks.call(
            hooks.stub.DisableEndpoint, wpb.DisableEndpointRequest(id=endpoint_id), view.caller
        )
        await _audit(c, view, "console.webhook_endpoint_disabled", endpoint_id)
        return c.redirect(request, f"/webhooks/{endpoint_id}", done="disabled")
    if action == "delete":
        await hooks.call(
            hooks.stub.DeleteEndpoint, wpb.DeleteEndpointRequest(id=endpoint_id), view.caller
        )
        await _audit(c, view, "console.webhook_endpoint_deleted", endpoint_id)
        return c.redirect(request, "/webhooks", done="deleted")
    event_id = str(form.get("event_id", "")).strip()[:64]
    if not event_id:
        return c.error(request, 422, "which event to resend?", view)
    delivery = await hooks.call(
        hooks.stub.ResendEvent,
        wpb.ResendEventRequest(endpoint_id=endpoint_id, event_id=event_id),
        view.caller,
    )
    await _audit(
        c, view, "console.webhook_resent", endpoint_id,
        {"event_id": event_id, "delivery_id": delivery.id},
    )  # fmt: skip
    return c.redirect(request, f"/webhooks/{endpoint_id}", done="resent")


async def _audit(
    c: Console, view: View, action: str, target: str, details: dict[str, object] | None = None
) -> None:
    await record(
        c.deps.store, c.deps.clock, view.origin, action,
        tenant_id=view.caller.tenant_id, target=target, details=details,
    )  # fmt: skip
