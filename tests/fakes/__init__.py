"""In-memory fakes of the services, one per service, for the gateway's tests.

Each fake is called like the service's generated async stub
(``await fake.CreatePayment(request, metadata=..., timeout=...)``), so the
gateway's one call helper (:class:`paymesh.gateway.clients.Client`) works on it
unchanged: it reads the caller from the call's metadata like the real service
does, and fails with a real :class:`grpc.aio.AioRpcError` carrying the service's
stable error code, which the gateway maps to a problem like any other.

:mod:`tests.fakes.payments_ports` is the exception: the ports the payments
service calls (the accounts ledger, risk), for the payments service's own tests.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from paymesh.platform.identity import Caller
from paymesh.platform.rpc import METADATA_ERROR_CODE

__all__ = ["rpc", "rpc_error", "unavailable"]

Fake = TypeVar("Fake")
Resp = TypeVar("Resp")


def rpc(
    method: Callable[..., Awaitable[Resp]],
) -> Callable[..., Awaitable[Resp]]:
    """A fake's method as a stub's: ``(request, *, metadata, timeout)``, with the caller
    the metadata carries passed on as ``caller``."""

    @functools.wraps(method)
    async def call(self: Any, request: Any, *, metadata: Any = (), timeout: Any = None) -> Resp:
        caller = Caller.from_metadata(metadata)
        if caller is None:
            raise rpc_error(grpc.StatusCode.UNAUTHENTICATED, "unauthenticated", "no caller")
        return await method(self, request, caller=caller)

    return call


def rpc_error(status: grpc.StatusCode, code: str, detail: str) -> grpc.aio.AioRpcError:
    """A failed call as a paymesh service answers it: a status, a stable code, a message."""
    return grpc.aio.AioRpcError(
        status,
        grpc.aio.Metadata(),
        grpc.aio.Metadata((METADATA_ERROR_CODE, code)),
        details=detail,
    )


def unavailable(detail: str = "the service is restarting") -> grpc.aio.AioRpcError:
    """A service that is down for now (the gateway answers 503 and keeps no key)."""
    return rpc_error(grpc.StatusCode.UNAVAILABLE, "unavailable", detail)
