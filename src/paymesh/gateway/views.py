"""What every feature's views share when they turn the services' protobuf messages into
the REST API's JSON bodies (each feature's own views are in features/<feature>/views.py)."""

from __future__ import annotations

from paymesh.contracts.events import format_time

__all__ = ["opt", "opt_time"]


def opt(text: str) -> str | None:
    """An optional string field: proto3's empty string is absent (null) in the API."""
    return text or None


def opt_time(us: int) -> str | None:
    """An optional time field: proto3's 0 is absent (null) in the API."""
    return format_time(us) if us else None
