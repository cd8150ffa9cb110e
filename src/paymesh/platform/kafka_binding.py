"""CloudEvents on Kafka: the Kafka protocol binding (CloudEvents 1.0), both ways.

paymesh writes **structured mode**: the record's value is the whole envelope as
JSON (the CloudEvents JSON event format) and its ``content-type`` header is
``application/cloudevents+json``; the key is the event's ``subject`` (its
aggregate id). No ``ce_`` header is written: a reader that sees one takes the
record for binary mode (the binding's own rule). The trace context also travels
as a plain ``traceparent`` header, for readers of headers only.

It reads three kinds of record:

- **structured mode** (``content-type: application/cloudevents+json``): the
  value is the envelope. Another event format (``application/cloudevents+avro``,
  a batch) is refused as malformed;
- **binary mode** (a ``ce_specversion`` header, as the binding requires of it):
  every attribute is a ``ce_<name>`` header (UTF-8), ``content-type`` is
  ``datacontenttype``, and the value is the data, which must be a JSON object;
- **paymesh's records from before the binding** (no ``content-type``, no
  ``ce_specversion``; headers ``ce_id``, ``ce_type``, ``ce_tenant``): the value
  is the envelope, as in structured mode. A rolling upgrade has both on a topic.

Whatever the mode, the event must have every attribute paymesh's envelope
requires (:func:`paymesh.platform.delivery.parse_envelope`), else it is
:class:`~paymesh.platform.delivery.MalformedEvent`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from paymesh.contracts.events import Event
from paymesh.platform.delivery import MalformedEvent, parse_envelope, parse_event
from paymesh.platform.tracing import TRACEPARENT

__all__ = [
    "CONTENT_TYPE",
    "STRUCTURED",
    "Headers",
    "from_record",
    "to_record",
]

CONTENT_TYPE = "content-type"
STRUCTURED = "application/cloudevents+json"
_CE = "ce_"
_SPECVERSION = f"{_CE}specversion"
# As Event.from_json takes it from the envelope: bounded, never refused.
_MAX_TRACEPARENT = 256

Headers = Sequence[tuple[str, str | bytes | None]]


def to_record(event: Event) -> tuple[bytes, bytes, list[tuple[str, str | bytes | None]]]:
    """The structured-mode record of `event`: its key, value and headers."""
    headers: list[tuple[str, str | bytes | None]] = [(CONTENT_TYPE, STRUCTURED)]
    if event.traceparent is not None:
        headers.append((TRACEPARENT, event.traceparent))
    return event.subject.encode(), event.to_json(), headers


def from_record(value: bytes | None, headers: Headers | None) -> Event:
    """The event in a record of any mode paymesh reads, or :class:`MalformedEvent`."""
    named = _headers(headers or ())
    content_type = named.get(CONTENT_TYPE)
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == STRUCTURED:
        event = parse_event(value)
    elif media.startswith("application/cloudevents"):
        raise MalformedEvent(f"an event format paymesh does not read: {content_type}")
    elif _SPECVERSION in named:
        event = _binary(value, named)
    else:
        event = parse_event(value)
    return _with_header_trace(event, named.get(TRACEPARENT))


def _binary(value: bytes | None, named: dict[str, str]) -> Event:
    """A binary-mode record: attributes in ``ce_`` headers, the data in the value."""
    envelope: dict[str, Any] = {
        name[len(_CE) :]: text for name, text in named.items() if name.startswith(_CE)
    }
    content_type = named.get(CONTENT_TYPE)
    if content_type is not None:
        envelope["datacontenttype"] = content_type
    media = (content_type or "application/json").split(";", 1)[0].strip().lower()
    if value:
        if not (media == "application/json" or media.endswith("+json")):
            raise MalformedEvent(f"data that is not JSON: {content_type}")
        try:
            envelope["data"] = json.loads(value)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise MalformedEvent(f"data is not JSON: {exc}") from exc
    return parse_envelope(envelope)


def _headers(headers: Headers) -> dict[str, str]:
    """Header names lowercased, values decoded (the last of a repeated name wins)."""
    named: dict[str, str] = {}
    for key, raw in headers:
        if raw is None:
            continue
        name = key.lower()
        try:
            named[name] = raw.decode() if isinstance(raw, bytes) else raw
        except UnicodeDecodeError as exc:
            # Another tool's binary header is none of ours; an attribute must be text.
            if name.startswith(_CE) or name == CONTENT_TYPE:
                raise MalformedEvent(f"header {key!r} is not UTF-8") from exc
    return named


def _with_header_trace(event: Event, header: str | None) -> Event:
    """`event`, with the record's ``traceparent`` header when its envelope has none
    (another producer may put the context in the header only)."""
    if event.traceparent is not None or not header or len(header) > _MAX_TRACEPARENT:
        return event
    return replace(event, traceparent=header)
