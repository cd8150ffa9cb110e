"""Webhook endpoints and deliveries as the API shows them: never a secret but in with_secret."""

from __future__ import annotations

from typing import Literal

from paymesh.contracts.events import format_time
from paymesh.contracts.webhooks.v1 import webhooks_pb2 as wpb
from paymesh.gateway.features.webhooks.schemas import (
    WebhookAttemptOut,
    WebhookDeliveryOut,
    WebhookEndpointOut,
    WebhookEndpointWithSecretOut,
)
from paymesh.gateway.views import opt_time

_ENDPOINT_STATUS: dict[int, Literal["enabled", "disabled"]] = {
    wpb.ENDPOINT_STATUS_ENABLED: "enabled",
    wpb.ENDPOINT_STATUS_DISABLED: "disabled",
}

_DELIVERY_STATUS: dict[int, Literal["pending", "succeeded", "failed"]] = {
    wpb.DELIVERY_STATUS_PENDING: "pending",
    wpb.DELIVERY_STATUS_SUCCEEDED: "succeeded",
    wpb.DELIVERY_STATUS_FAILED: "failed",
}


def endpoint_view(e: wpb.Endpoint) -> WebhookEndpointOut:
    """An endpoint as the API shows it: never its secret."""
    return WebhookEndpointOut(
        id=e.id,
        url=e.url,
        events=list(e.events),
        status=_ENDPOINT_STATUS.get(e.status, "disabled"),
        description=e.description or None,
        disabled_reason=e.disabled_reason or None,
        previous_secret_expires=opt_time(e.previous_secret_expires_at_us),
        created=format_time(e.created_at_us),
    )


def with_secret(made: wpb.EndpointWithSecret) -> WebhookEndpointWithSecretOut:
    view = endpoint_view(made.endpoint)
    return WebhookEndpointWithSecretOut(**view.model_dump(), secret=made.secret)


def delivery_view(d: wpb.Delivery) -> WebhookDeliveryOut:
    """A delivery with its attempts."""
    return WebhookDeliveryOut(
        id=d.id,
        endpoint_id=d.endpoint_id,
        event_id=d.event_id,
        event_type=d.event_type,
        status=_DELIVERY_STATUS.get(d.status, "pending"),
        attempts_count=d.attempts_count,
        next_attempt=(
            opt_time(d.next_attempt_at_us) if d.status == wpb.DELIVERY_STATUS_PENDING else None
        ),
        attempts=[
            WebhookAttemptOut(
                number=a.number,
                started=format_time(a.started_at_us),
                status_code=a.status_code or None,
                latency_ms=a.latency_ms,
                error=a.error or None,
            )
            for a in d.attempts
        ],
        created=format_time(d.created_at_us),
    )
