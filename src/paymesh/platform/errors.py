"""The root of every service's errors, and how an error crosses gRPC.

A service's errors subclass :class:`ServiceError` and say, once, on the class, the
stable snake_case ``code`` callers see and the gRPC ``status`` (a
``grpc.StatusCode`` name, so domains raising them stay free of grpc) the call ends
with. Every gRPC server (:class:`paymesh.platform.rpc.GrpcServer`) turns an error
raised by a servicer method into that status, with the code in the trailing
metadata: servicer methods need no try/except of their own.
"""

from __future__ import annotations

from typing import ClassVar, Literal

Status = Literal[
    "INVALID_ARGUMENT",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "FAILED_PRECONDITION",
    "UNAVAILABLE",
    "UNAUTHENTICATED",
    "RESOURCE_EXHAUSTED",
    "INTERNAL",
]


class ServiceError(Exception):
    """An error a service answers its caller with (never a bug)."""

    code: ClassVar[str] = "service_error"
    status: ClassVar[Status] = "INTERNAL"

    @property
    def message(self) -> str:
        """What the caller reads."""
        return str(self)

    def grpc_status(self) -> Status:
        """The status this error ends a call with (an instance may refine its class's)."""
        return self.status
