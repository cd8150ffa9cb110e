"""The response bodies of events."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from paymesh.contracts.events import PAYMENT_SUCCEEDED
from paymesh.gateway.schemas import _Out


class EventOut(BaseModel):
    """An event: the CloudEvents 1.0 envelope, as webhooks deliver it."""

    model_config = ConfigDict(
        extra="allow",
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "id": f"evt_pay_0a1b2c_{PAYMENT_SUCCEEDED}",
                    "source": "/paymesh/payments",
                    "type": PAYMENT_SUCCEEDED,
                    "subject": "pay_0a1b2c",
                    "time": "2026-01-01T12:00:00Z",
                    "tenant": "ten_0a1b2c",
                    "specversion": "1.0",
                    "datacontenttype": "application/json",
                    "data": {"id": "pay_0a1b2c", "object": "payment", "status": "succeeded"},
                }
            ]
        },
    )
    id: str
    source: str
    type: str = Field(description="e.g. payment.succeeded, refund.succeeded, payout.failed.")
    subject: str = Field(description="The id of the object the event is about.")
    time: str
    tenant: str
    specversion: str
    datacontenttype: str
    data: dict[str, Any] = Field(
        description="The object as the REST API shows it (the same fields, the same names)."
    )


class EventList(_Out):
    """A page of events, newest first."""

    data: list[EventOut]
    has_more: bool
