"""The webhooks service's errors, each with a stable snake_case ``code``.

::

    WebhooksError                 webhooks_error
     ├── InvalidRequest           invalid_request           (gRPC INVALID_ARGUMENT)
     ├── EndpointNotFound         webhook_endpoint_not_found (gRPC NOT_FOUND; also another tenant's)
     ├── EndpointConflict         webhook_endpoint_exists   (gRPC ALREADY_EXISTS: the id is taken)
     ├── EndpointDisabled         webhook_endpoint_disabled (gRPC FAILED_PRECONDITION)
     └── EventNotFound            event_not_found           (gRPC NOT_FOUND; also another tenant's)
"""

from __future__ import annotations

__all__ = [
    "EndpointConflict",
    "EndpointDisabled",
    "EndpointNotFound",
    "EventNotFound",
    "InvalidRequest",
    "WebhooksError",
]


class WebhooksError(Exception):
    """The root of every webhooks error."""

    code = "webhooks_error"


class InvalidRequest(WebhooksError):
    """The request is malformed: a bad URL, an unknown event type, a bad id."""

    code = "invalid_request"


class EndpointNotFound(WebhooksError):
    """No endpoint with this id that the caller may see."""

    code = "webhook_endpoint_not_found"

    def __init__(self, endpoint_id: str) -> None:
        super().__init__(f"no webhook endpoint {endpoint_id!r}")
        self.endpoint_id = endpoint_id


class EndpointConflict(WebhooksError):
    """The id names an endpoint made with other fields (or deleted)."""

    code = "webhook_endpoint_exists"

    def __init__(self, endpoint_id: str) -> None:
        super().__init__(f"webhook endpoint id {endpoint_id!r} is taken by another endpoint")
        self.endpoint_id = endpoint_id


class EndpointDisabled(WebhooksError):
    """The endpoint is disabled; enable it first."""

    code = "webhook_endpoint_disabled"

    def __init__(self, endpoint_id: str) -> None:
        super().__init__(f"webhook endpoint {endpoint_id!r} is disabled")
        self.endpoint_id = endpoint_id


class EventNotFound(WebhooksError):
    """No stored event with this id that the caller may see."""

    code = "event_not_found"

    def __init__(self, event_id: str) -> None:
        super().__init__(f"no event {event_id!r}")
        self.event_id = event_id
