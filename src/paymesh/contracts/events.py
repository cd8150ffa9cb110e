"""The event envelope (CloudEvents 1.0, JSON) and the topics events travel on.

An event is keyed by its aggregate id (``subject``), so every event of one
payment lands on one partition, in order. ``tenant`` is a CloudEvents
extension attribute, and so is ``traceparent`` (the Distributed Tracing
extension: the W3C trace context the event was produced in, written only when
tracing is on; optional, absent from the JSON when unset, and dropped when it is
not a string, so an event parses with or without it). Add fields; never change
what one means.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "TOPIC_ACCOUNTS",
    "TOPIC_PAYMENTS",
    "TOPIC_RISK",
    "TOPIC_WEBHOOKS",
    "Event",
    "format_time",
]

TOPIC_PAYMENTS = "paymesh.payments.v1"
TOPIC_ACCOUNTS = "paymesh.accounts.v1"
TOPIC_RISK = "paymesh.risk.v1"
TOPIC_WEBHOOKS = "paymesh.webhooks.v1"

# A version-00 traceparent is 55 characters; later versions may append fields.
_MAX_TRACEPARENT = 256


def format_time(us: int) -> str:
    """RFC 3339 UTC time from Unix microseconds."""
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Event:
    """One CloudEvent: something that happened, past tense (``payment.succeeded``)."""

    id: str
    source: str
    type: str
    subject: str
    time: str
    tenant: str
    data: dict[str, Any] = field(default_factory=dict)
    specversion: str = "1.0"
    datacontenttype: str = "application/json"
    traceparent: str | None = None

    def to_json(self) -> bytes:
        """The structured-mode JSON form (without ``traceparent`` when it is unset)."""
        obj = asdict(self)
        if self.traceparent is None:
            del obj["traceparent"]
        return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> Event:
        """Parse the structured-mode JSON form; unknown attributes are ignored, and so is
        a ``traceparent`` that is not a plausible one (tracing never refuses an event)."""
        obj = json.loads(raw)
        known = {f: obj[f] for f in cls.__dataclass_fields__ if f in obj}
        trace = known.get("traceparent")
        if trace is not None and not (isinstance(trace, str) and len(trace) <= _MAX_TRACEPARENT):
            del known["traceparent"]
        return cls(**known)
