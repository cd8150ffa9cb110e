"""The services behind the gateway: their generated stubs, and one way to call them.

:meth:`Client.call` calls any method of a service's stub with the caller's
metadata and the deadline, and turns a failed call into :class:`UpstreamError`
with the service's stable error code, so the routes never see gRPC.

Each call has the fixed deadline its client was built with; inside
:func:`calls_may_wait_until` (work the gateway admitted) it may take until the
given moment instead, when that is later.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Generic, TypeVar

import grpc

from paymesh.gateway.domain import upstream_status
from paymesh.gateway.errors import ServiceUnavailable, UpstreamError
from paymesh.platform.identity import Caller
from paymesh.platform.rpc import caller_options, error_code

__all__ = ["Client", "calls_may_wait_until", "upstream_error"]

Stub = TypeVar("Stub")
Req = TypeVar("Req")
Resp = TypeVar("Resp")

_DEFAULT_CODES = {
    404: "not_found",
    409: "conflict",
    422: "validation_error",
    401: "unauthenticated",
    403: "forbidden",
    429: "rate_limited",
    503: "service_unavailable",
}


class Client(Generic[Stub]):
    """A service as the gateway calls it: its generated stub (or an in-memory fake of
    it in tests); None when the service is not wired, and then every route that
    needs it answers 503."""

    def __init__(self, stub: Stub | None, *, service: str, deadline_s: float) -> None:
        self._stub = stub
        self._service = service
        self._deadline_s = deadline_s

    @property
    def stub(self) -> Stub:
        """The service's stub (503 when the service is not configured)."""
        if self._stub is None:
            raise ServiceUnavailable(f"the {self._service} service is not configured")
        return self._stub

    async def call(
        self, method: grpc.aio.UnaryUnaryMultiCallable[Req, Resp], request: Req, caller: Caller
    ) -> Resp:
        """One call of a stub method on the caller's behalf, within the deadline."""
        try:
            return await method(request, **caller_options(caller, _deadline(self._deadline_s)))
        except grpc.aio.AioRpcError as exc:
            raise upstream_error(exc) from exc


def upstream_error(exc: grpc.aio.AioRpcError) -> UpstreamError | ServiceUnavailable:
    """The gateway error for a failed call to a service."""
    status = upstream_status(exc.code().name)
    if status == 503:
        return ServiceUnavailable("a service is unavailable, retry later")
    code = error_code(exc) or _DEFAULT_CODES.get(status, "upstream_error")
    detail = exc.details() or code
    if status >= 500:
        detail = "a service failed"  # its message may say more than a client should see
    return UpstreamError(status, code, detail)


# time.monotonic() seconds until which the calls of this task may wait (None: their own deadline).
_WAIT_UNTIL: ContextVar[float | None] = ContextVar("paymesh_gateway_wait_until", default=None)


@contextmanager
def calls_may_wait_until(moment: float) -> Iterator[None]:
    """Let the service calls made inside take until `moment` (time.monotonic() seconds)."""
    token = _WAIT_UNTIL.set(moment)
    try:
        yield
    finally:
        _WAIT_UNTIL.reset(token)


def _deadline(deadline_s: float) -> float:
    until = _WAIT_UNTIL.get()
    return deadline_s if until is None else max(deadline_s, until - time.monotonic())
