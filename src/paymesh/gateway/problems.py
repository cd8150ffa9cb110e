"""RFC 9457 problem responses: every error the gateway answers has this shape.

Handlers here turn gateway errors, request validation errors, Starlette's
404/405 and any unexpected exception into ``application/problem+json``.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from paymesh.gateway import meters
from paymesh.gateway.asgi import HttpMiddleware, TrackedSend
from paymesh.gateway.errors import TITLES, GatewayError, RateLimited
from paymesh.platform.logging import get_logger
from paymesh.platform.unavailable import is_unavailable

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "ProblemMiddleware",
    "install_problem_handlers",
    "problem_response",
    "problem_responses",
    "with_account_problems",
]

log = get_logger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"

_DESCRIPTIONS = {
    400: "Malformed request (malformed_json, idempotency_key_required, ...).",
    401: "Missing, invalid or expired access token, or bad client credentials.",
    403: "The token lacks the scope this operation needs (insufficient_scope).",
    404: "No such object for this tenant (another tenant's objects are never shown).",
    409: "Conflict with the object's state, or the Idempotency-Key is still in use.",
    413: "The request body is larger than the gateway accepts (payload_too_large).",
    422: "Invalid request (validation_error lists each field), or idempotency_key_reused.",
    429: (
        "Rate limited (rate_limited) or overloaded (overloaded: refused before any work); "
        "retry after the Retry-After header."
    ),
    503: "A service behind the gateway is unavailable (service_unavailable); retry.",
    504: "The request took longer than the gateway allows (request_timeout); retry.",
}


def problem_body(
    status: int, code: str, detail: str, errors: Sequence[Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """The JSON members of a problem."""
    body: dict[str, Any] = {
        "type": f"urn:paymesh:problem:{code}",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if errors is not None:
        body["errors"] = list(errors)
    return body


def problem_response(
    status: int,
    code: str,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    errors: Sequence[Mapping[str, Any]] | None = None,
) -> Response:
    """An application/problem+json response."""
    content = json.dumps(
        problem_body(status, code, detail, errors), separators=(",", ":"), default=str
    ).encode()
    return Response(
        content, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=dict(headers or {})
    )


def error_response(exc: GatewayError) -> Response:
    """The problem response of a gateway error (a 429 is counted by the limit that refused)."""
    if isinstance(exc, RateLimited):
        meters.rate_limited(exc.limit)
    return problem_response(
        exc.http_status, exc.code, exc.detail, headers=exc.headers, errors=exc.errors
    )


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries: the problem schema for each error status."""
    return {
        status: {
            "description": _DESCRIPTIONS.get(status, TITLES.get(status, "Error")),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


_ACCOUNT_PROBLEMS = {
    404: "account_not_found: an account the request names is not the tenant's (an unknown id"
    " and another tenant's account get the same answer); nothing was created.",
    422: "currency_mismatch: an account the request names holds another currency than the"
    " request (`detail` names both); nothing was created.",
}


def with_account_problems(
    responses: Mapping[int | str, dict[str, Any]],
) -> dict[int | str, dict[str, Any]]:
    """`responses` of a route that names accounts: its 404 and 422 also say why for accounts."""
    out = dict(responses)
    for status, why in _ACCOUNT_PROBLEMS.items():
        entry = out.get(status) or problem_responses(status)[status]
        out[status] = {**entry, "description": f"{entry['description']} Or {why}"}
    return out


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {
            "loc": [str(p) for p in err.get("loc", ())],
            "field": ".".join(str(p) for p in err.get("loc", ())[1:]),
            "msg": err.get("msg", ""),
            "type": err.get("type", ""),
        }
        for err in exc.errors()
    ]


async def _on_gateway_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return error_response(exc)


async def _on_validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if any(err.get("type") == "json_invalid" for err in exc.errors()):
        return problem_response(400, "malformed_json", "the request body is not valid JSON")
    return problem_response(
        422, "validation_error", "the request is invalid", errors=_field_errors(exc)
    )


async def _on_http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    detail = {404: "no such resource", 405: "method not allowed on this resource"}
    return problem_response(
        exc.status_code,
        codes.get(exc.status_code, "http_error"),
        detail.get(exc.status_code, str(exc.detail)),
        headers=exc.headers,
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error as a problem."""
    app.add_exception_handler(GatewayError, _on_gateway_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_middleware(ProblemMiddleware)


class ProblemMiddleware(HttpMiddleware):
    """Turn an unexpected exception into a 500 problem, logged, never a stack trace; a
    dependency that is down (:func:`~paymesh.platform.unavailable.is_unavailable`) into a
    503 with Retry-After."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracked = TrackedSend(send)
        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            if is_unavailable(exc) and not tracked.started:
                # A database or Redis down for now: nothing was done that a retry repeats.
                log.warning(
                    "dependency_unavailable",
                    path=scope.get("path"),
                    method=scope.get("method"),
                    error=type(exc).__name__,
                )
                response = problem_response(
                    503,
                    "service_unavailable",
                    "a service behind the gateway is unavailable; retry",
                    headers={"Retry-After": "1"},
                )
                await response(scope, receive, send)
                return
            # The stack as text, never the frames' locals (they may hold secrets or tokens).
            log.error(
                "unhandled_error",
                path=scope.get("path"),
                method=scope.get("method"),
                exception=traceback.format_exc(),
            )
            if tracked.started:
                raise
            response = problem_response(500, "internal_error", "an unexpected error occurred")
            await response(scope, receive, send)
