"""What every feature's views share when they turn the services' protobuf messages into
the REST API's JSON bodies (each feature's own views are in features/<feature>/views.py)."""

from __future__ import annotations

__all__ = ["opt"]


def opt(text: str) -> str | None:
    """An optional string field: proto3's empty string is absent (null) in the API."""
    return text or None
