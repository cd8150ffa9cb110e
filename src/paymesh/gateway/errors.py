"""The gateway's errors; each becomes one RFC 9457 problem response.

::

    GatewayError (status, code)
    ├── BadRequest                 400  malformed_json, idempotency_key_required, invalid_request,
    │   ├── MalformedJson               invalid_idempotency_key, unsupported_grant_type,
    │   └── IdempotencyKeyRequired      invalid_scope
    ├── Unauthenticated            401  unauthenticated, invalid_token, invalid_client
    ├── Forbidden                  403  insufficient_scope
    ├── NotFound                   404  not_found, <code from the service>: account_not_found, ...
    ├── Conflict                   409  idempotency_key_in_progress, <code from the service>
    ├── PayloadTooLarge            413  payload_too_large
    ├── Unprocessable              422  validation_error, idempotency_key_reused, <service code>:
    │                                   invalid_request, currency_mismatch, ...
    ├── RateLimited                429  rate_limited
    │   └── Overloaded                  overloaded (shed before any work; retry after Retry-After)
    ├── ServiceUnavailable         503  service_unavailable
    ├── RequestTimeout             504  request_timeout
    └── UpstreamError              any  what a backend service answered (its stable code)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

__all__ = [
    "BadRequest",
    "Conflict",
    "Forbidden",
    "GatewayError",
    "IdempotencyKeyRequired",
    "MalformedJson",
    "NotFound",
    "Overloaded",
    "PayloadTooLarge",
    "RateLimited",
    "RequestTimeout",
    "ServiceUnavailable",
    "Unauthenticated",
    "Unprocessable",
    "UnsupportedMediaType",
    "UpstreamError",
]

TITLES: Mapping[int, str] = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class GatewayError(Exception):
    """An error the client sees as a problem response."""

    status: ClassVar[int] = 500
    default_code: ClassVar[str] = "internal_error"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        errors: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code or self.default_code
        self.headers = dict(headers or {})
        self.errors = list(errors) if errors is not None else None

    @property
    def http_status(self) -> int:
        """The HTTP status of the problem."""
        return self.status


class BadRequest(GatewayError):
    status = 400
    default_code = "invalid_request"


class MalformedJson(BadRequest):
    default_code = "malformed_json"


class IdempotencyKeyRequired(BadRequest):
    default_code = "idempotency_key_required"


class Unauthenticated(GatewayError):
    """Not authenticated: `reason` says why (see :data:`paymesh.gateway.meters.AUTH_REASONS`)."""

    status = 401
    default_code = "unauthenticated"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        reason: str = "invalid_token",
    ) -> None:
        super().__init__(detail, code=code, headers=headers)
        self.reason = reason


class Forbidden(GatewayError):
    status = 403
    default_code = "insufficient_scope"


class NotFound(GatewayError):
    status = 404
    default_code = "not_found"


class Conflict(GatewayError):
    status = 409
    default_code = "conflict"


class Unprocessable(GatewayError):
    status = 422
    default_code = "validation_error"


class PayloadTooLarge(GatewayError):
    status = 413
    default_code = "payload_too_large"


class UnsupportedMediaType(GatewayError):
    status = 415
    default_code = "unsupported_media_type"


class RateLimited(GatewayError):
    """Refused by a limit: `limit` names which one (see :data:`paymesh.gateway.meters.LIMITS`)."""

    status = 429
    default_code = "rate_limited"
    default_limit: ClassVar[str] = "client"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        limit: str | None = None,
    ) -> None:
        super().__init__(detail, code=code, headers=headers)
        self.limit = limit or self.default_limit


class Overloaded(RateLimited):
    """The gateway has more work than it can take on now; nothing of this request was done."""

    default_code = "overloaded"
    default_limit = "overloaded"


class RequestTimeout(GatewayError):
    status = 504
    default_code = "request_timeout"


class ServiceUnavailable(GatewayError):
    status = 503
    default_code = "service_unavailable"


class UpstreamError(GatewayError):
    """What a backend service answered, with the HTTP status it maps to."""

    def __init__(self, http_status: int, code: str, detail: str) -> None:
        super().__init__(detail, code=code)
        self._http_status = http_status

    @property
    def http_status(self) -> int:
        return self._http_status
