"""The REST bodies of webhook endpoints and their deliveries (pydantic).

Request models forbid unknown fields. An endpoint's signing secret appears
in two answers only: the endpoint's creation and a rotation
(:class:`WebhookEndpointWithSecretOut`); every other answer leaves it out.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from paymesh.contracts.events import PAYMENT_SUCCEEDED, REFUND_SUCCEEDED
from paymesh.gateway.text import Text

__all__ = [
    "CreateWebhookEndpointIn",
    "ResendEventIn",
    "RotateSecretIn",
    "WebhookAttemptOut",
    "WebhookDeliveryList",
    "WebhookDeliveryOut",
    "WebhookEndpointList",
    "WebhookEndpointOut",
    "WebhookEndpointWithSecretOut",
]

# How long an old secret may keep signing after a rotation, at most (7 days).
MAX_GRACE_PERIOD_S = 7 * 24 * 3600

EventType = Annotated[
    Text,
    Field(
        min_length=1,
        max_length=100,
        pattern=r"^(\*|[a-z][a-z_]*\.[a-z][a-z_]*)$",
        description="An event type such as payment.succeeded, or * for every event.",
        examples=[PAYMENT_SUCCEEDED],
    ),
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class CreateWebhookEndpointIn(_In):
    """Create a webhook endpoint: where the tenant's events are delivered."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "url": "https://merchant.example/webhooks/paymesh",
                    "events": [PAYMENT_SUCCEEDED, REFUND_SUCCEEDED],
                    "description": "orders service",
                }
            ]
        }
    )
    url: Annotated[
        Text,
        Field(
            min_length=8,
            max_length=2048,
            pattern=r"^https?://",
            description="https (http only in development); no private or loopback address.",
        ),
    ]
    events: Annotated[list[EventType], Field(min_length=1, max_length=50)]
    description: Annotated[Text, Field(max_length=500)] | None = None


class RotateSecretIn(_In):
    """Rotate an endpoint's signing secret."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"grace_period_s": 86400}, {}]})
    grace_period_s: (
        Annotated[
            StrictInt,
            Field(
                ge=0,
                le=MAX_GRACE_PERIOD_S,
                description="How long the old secret keeps signing beside the new one, in "
                "seconds (0 or absent: the configured default).",
            ),
        ]
        | None
    ) = None


class ResendEventIn(_In):
    """Deliver one of the tenant's events to the endpoint again."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"event_id": "evt_pay_0a1b2c_payment.succeeded"}]}
    )
    event_id: Annotated[Text, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")]


class WebhookEndpointOut(_Out):
    """A webhook endpoint (without its secret)."""

    id: str
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    url: str
    events: list[str] = Field(description="The event types it receives; ['*'] for all.")
    status: Literal["enabled", "disabled"] = Field(
        description="disabled after failing for too long (see disabled_reason), until enabled."
    )
    description: str | None
    disabled_reason: str | None = Field(description="Why it is disabled.")
    previous_secret_expires: str | None = Field(
        description="After a rotation: until when the previous secret still signs too."
    )
    created: str


class WebhookEndpointWithSecretOut(WebhookEndpointOut):
    """A webhook endpoint with its signing secret: shown only in this answer."""

    secret: str = Field(description="whsec_...: verifies the Paymesh-Signature header.")


class WebhookEndpointList(_Out):
    """A page of webhook endpoints, newest first."""

    data: list[WebhookEndpointOut]
    has_more: bool


class WebhookAttemptOut(_Out):
    """One HTTP attempt of a delivery."""

    number: int
    started: str
    status_code: int | None = Field(description="The endpoint's HTTP status; null: no answer.")
    latency_ms: int
    error: str | None = Field(
        description="e.g. timeout, connection_error, address_refused, http_500."
    )


class WebhookDeliveryOut(_Out):
    """The delivery of one event to one endpoint, with its attempts."""

    id: str
    object: Literal["webhook_delivery"] = "webhook_delivery"
    endpoint_id: str
    event_id: str
    event_type: str
    status: Literal["pending", "succeeded", "failed"] = Field(
        description="pending (waiting for its next attempt), succeeded, or failed (gave up)."
    )
    attempts_count: int
    next_attempt: str | None = Field(description="When a pending delivery is tried next.")
    attempts: list[WebhookAttemptOut]
    created: str


class WebhookDeliveryList(_Out):
    """A page of an endpoint's delivery log, newest first."""

    data: list[WebhookDeliveryOut]
    has_more: bool
