"""An event as the API shows it."""

from __future__ import annotations

import json

from paymesh.contracts.payments.v1 import payments_pb2 as ppb
from paymesh.gateway.features.events.schemas import EventOut


def event_view(e: ppb.Event) -> EventOut:
    """An event: its CloudEvents envelope."""
    return EventOut.model_validate(json.loads(e.json))
