"""The webhooks service's errors, each with a stable snake_case ``code`` and the gRPC
``status`` a call ends with.

::

    WebhooksError                 webhooks_error            (ServiceError; gRPC INTERNAL)
     ├── InvalidRequest           invalid_request           (gRPC INVALID_ARGUMENT)
     ├── EndpointNotFound         webhook_endpoint_not_found (gRPC NOT_FOUND; also another tenant's)
     ├── EndpointConflict         webhook_endpoint_exists   (gRPC ALREADY_EXISTS: the id is taken)
     ├── EndpointDisabled         webhook_endpoint_disabled (gRPC FAILED_PRECONDITION)
     └── EventNotFound            event_not_found           (gRPC NOT_FOUND; also another tenant's)
"""

from __future__ import annotations

from typing import ClassVar

from paymesh.platform.errors import ServiceError

__all__ = [
    "EndpointConflict",
    "EndpointDisabled",
    "EndpointNotFound",
    "EventNotFound",
    "InvalidRequest",
    "WebhooksError",
]


class WebhooksError(ServiceError):
    """The root of every webhooks error."""

    code = "webhooks_error"


class InvalidRequest(WebhooksError):
    """The request is malformed: a bad URL, an unknown event type, a bad id."""

    code = "invalid_request"
    status = "INVALID_ARGUMENT"


class _AboutEndpoint(WebhooksError):
    """An error about one endpoint, which its message names."""

    message_format: ClassVar[str]

    def __init__(self, endpoint_id: str) -> None:
        super().__init__(self.message_format.format(endpoint_id=endpoint_id))
        self.endpoint_id = endpoint_id


class EndpointNotFound(_AboutEndpoint):
    """No endpoint with this id that the caller may see."""

    code = "webhook_endpoint_not_found"
    status = "NOT_FOUND"
    message_format = "no webhook endpoint {endpoint_id!r}"


class EndpointConflict(_AboutEndpoint):
    """The id names an endpoint made with other fields (or deleted)."""

    code = "webhook_endpoint_exists"
    status = "ALREADY_EXISTS"
    message_format = "webhook endpoint id {endpoint_id!r} is taken by another endpoint"


class EndpointDisabled(_AboutEndpoint):
    """The endpoint is disabled; enable it first."""

    code = "webhook_endpoint_disabled"
    status = "FAILED_PRECONDITION"
    message_format = "webhook endpoint {endpoint_id!r} is disabled"


class EventNotFound(WebhooksError):
    """No stored event with this id that the caller may see."""

    code = "event_not_found"
    status = "NOT_FOUND"

    def __init__(self, event_id: str) -> None:
        super().__init__(f"no event {event_id!r}")
        self.event_id = event_id
