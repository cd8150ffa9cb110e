"""gRPC server and client helpers: health, reflection, deadlines, caller identity,
errors that carry a stable code across the wire, and the calls' metrics.

A servicer reads the caller with :func:`require_caller` and fails with
:func:`abort`, which puts the stable error code in trailing metadata;
clients read it back with :func:`error_code`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from time import perf_counter
from typing import Any, NoReturn, TypeAlias, TypedDict

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import Histogram

from paymesh.platform.errors import ServiceError
from paymesh.platform.identity import Caller
from paymesh.platform.logging import (
    bind_request_id,
    current_request_id,
    get_logger,
    valid_request_id,
)
from paymesh.platform.loops import Periodic
from paymesh.platform.metrics import GRPC_CLIENT_DURATION, GRPC_SERVER_DURATION
from paymesh.platform.settings import TlsSettings
from paymesh.platform.tracing import TRACEPARENT, current_traceparent
from paymesh.platform.unavailable import is_unavailable

__all__ = [
    "METADATA_ERROR_CODE",
    "METADATA_REQUEST_ID",
    "CallOptions",
    "ClientMetricsInterceptor",
    "GrpcServer",
    "RequestIdInterceptor",
    "ServerMetricsInterceptor",
    "UnavailableInterceptor",
    "abort",
    "caller_options",
    "channel_credentials",
    "error_code",
    "open_channel",
    "require_caller",
    "server_credentials",
]

log = get_logger(__name__)

METADATA_ERROR_CODE = "x-paymesh-error-code"
# The gateway's request id, passed on by every call made while handling the request.
METADATA_REQUEST_ID = "x-request-id"

# Every paymesh RPC is idempotent (ids are chosen by the caller), so a call
# that never reached a server may be retried by the channel itself.
_SERVICE_CONFIG = json.dumps(
    {
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [
            {
                "name": [{}],
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ],
    }
)


# A connection lives at most a minute (then GOAWAY, and calls in flight get 10 s to
# finish): clients re-resolve and spread over replicas that started since. Dead
# peers are found by keepalive pings, which clients may send every 10 s.
_SERVER_OPTIONS: list[tuple[str, object]] = [
    ("grpc.so_reuseport", 0),
    ("grpc.max_receive_message_length", 16 << 20),
    ("grpc.max_connection_age_ms", 60_000),
    ("grpc.max_connection_age_grace_ms", 10_000),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
]


# A method's handler (None: the server has no such method), and how an interceptor
# asks the next one for it.
# (Quoted: grpc's classes are generic only to type checkers.)
MethodHandler: TypeAlias = "grpc.RpcMethodHandler[Any, Any] | None"
Continuation: TypeAlias = Callable[[grpc.HandlerCallDetails], Awaitable[MethodHandler]]
# A unary-unary method's behaviour: (request, context) -> response.
Unary = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]


class _UnaryInterceptor(grpc.aio.ServerInterceptor):
    """A server interceptor that wraps every unary-unary method (others pass as they are)."""

    def wrap(self, inner: Unary, method: str | bytes) -> Unary:
        """The behaviour that replaces `inner`, the behaviour of `method`."""
        raise NotImplementedError

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> MethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        return grpc.unary_unary_rpc_method_handler(
            self.wrap(handler.unary_unary, handler_call_details.method),  # type: ignore[arg-type]
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


class UnavailableInterceptor(_UnaryInterceptor):
    """How a unary call's failure reaches the caller: a service's own error
    (:class:`~paymesh.platform.errors.ServiceError`) as its status and code; UNAVAILABLE
    (which callers retry) when a dependency is down
    (:func:`~paymesh.platform.unavailable.is_unavailable`), not UNKNOWN as for a bug."""

    def wrap(self, inner: Unary, method: str | bytes) -> Unary:
        async def unary_unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            try:
                return await inner(request, context)
            except grpc.aio.AbortError:
                raise
            except ServiceError as exc:
                status = grpc.StatusCode[exc.grpc_status()]
                await abort(context, status, exc.code, exc.message)
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                log.warning("dependency_unavailable", method=method, error=type(exc).__name__)
                await abort(
                    context, grpc.StatusCode.UNAVAILABLE, "unavailable", "a dependency is down"
                )

        return unary_unary


class RequestIdInterceptor(grpc.aio.ServerInterceptor):
    """Bind the caller's ``x-request-id`` to the log lines of the call (and to the calls
    it makes in turn: :func:`caller_options` passes it on)."""

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> MethodHandler:
        # grpc.aio runs each call, this included, in a task of its own: the binding
        # is the call's only.
        for key, value in handler_call_details.invocation_metadata or ():
            if key == METADATA_REQUEST_ID:
                bind_request_id(valid_request_id(value))
                break
        return await continuation(handler_call_details)


class _CallTimes:
    """The histogram children of one service's calls, made once per (method, code)."""

    def __init__(self, histogram: Histogram, service: str) -> None:
        self._histogram = histogram
        self._service = service
        self._children: dict[tuple[str | bytes, grpc.StatusCode], Histogram] = {}

    def observe(self, method: str | bytes, code: grpc.StatusCode, seconds: float) -> None:
        child = self._children.get((method, code))
        if child is None:
            name = method.decode() if isinstance(method, bytes) else method
            child = self._histogram.labels(self._service, name, code.name)
            self._children[(method, code)] = child
        child.observe(seconds)


class ServerMetricsInterceptor(_UnaryInterceptor):
    """Time every unary call a service handles, by method and status code
    (``paymesh_grpc_server_handled_seconds``). Only methods the server has are
    observed, so a caller cannot make up label values."""

    def __init__(self, service: str) -> None:
        self._times = _CallTimes(GRPC_SERVER_DURATION, service)

    def wrap(self, inner: Unary, method: str | bytes) -> Unary:
        observe = self._times.observe

        async def unary_unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started = perf_counter()
            code = grpc.StatusCode.UNKNOWN  # an exception that is not an abort
            try:
                response = await inner(request, context)
                code = grpc.StatusCode.OK
                return response
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            finally:
                # A handler that aborted, or set a code itself, says which.
                observe(method, context.code() or code, perf_counter() - started)

        return unary_unary


class ClientMetricsInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """Time every unary call a service makes, by method and status code, until its
    answer (``paymesh_grpc_client_handled_seconds``; retries by the channel included)."""

    def __init__(self, service: str) -> None:
        self._times = _CallTimes(GRPC_CLIENT_DURATION, service)

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        started = perf_counter()
        call = await continuation(client_call_details, request)
        code = grpc.StatusCode.CANCELLED
        try:
            code = await call.code()  # waits for the answer; the caller awaits `call` as ever
        finally:
            self._times.observe(client_call_details.method, code, perf_counter() - started)
        return call


def _read_tls(tls: TlsSettings) -> tuple[bytes, bytes, bytes]:
    """The CA, certificate and key files of `tls`, read."""
    files = (tls.ca_file, tls.cert_file, tls.key_file)
    ca, cert, key = (Path(name).read_bytes() for name in files)
    return ca, cert, key


def server_credentials(tls: TlsSettings) -> grpc.ServerCredentials:
    """Server side of mutual TLS: present our certificate, require a client certificate
    signed by the CA."""
    ca, cert, key = _read_tls(tls)
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=True
    )


def channel_credentials(tls: TlsSettings) -> grpc.ChannelCredentials:
    """Client side of mutual TLS: verify the server against the CA, present our certificate."""
    ca, cert, key = _read_tls(tls)
    return grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=cert
    )


class GrpcServer:
    """One service's gRPC server with the health and reflection services; over mutual
    TLS when `tls` is enabled, plaintext otherwise.

    `service` is the paymesh service it serves (the ``service`` label of its calls'
    metrics). `ready`, when given, is asked every `ready_interval_s` seconds whether
    the service can do its work (its readiness, see :mod:`paymesh.platform.health`);
    the health service answers NOT_SERVING while it says no, SERVING again once it
    says yes.

    `interceptors` run outside the server's own (tracing's, say: its span then sees
    the status the call ends with).
    """

    def __init__(
        self,
        listen: str,
        register: Callable[[grpc.aio.Server], None],
        service_names: Sequence[str],
        tls: TlsSettings | None = None,
        *,
        service: str,
        ready: Callable[[], bool] | None = None,
        ready_interval_s: float = 0.5,
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    ) -> None:
        self._listen = listen
        self._ready = ready
        self._serving = False
        # start() reports the first answer; the watcher looks again every interval.
        self._watcher = Periodic(
            "grpc-health-watch", self._watch, interval_s=ready_interval_s, wait_first=True
        )
        self._credentials = server_credentials(tls) if tls is not None and tls.enabled else None
        # The metrics see what the caller gets, UNAVAILABLE for a dependency down included.
        self._server = grpc.aio.server(
            options=_SERVER_OPTIONS,
            interceptors=[
                RequestIdInterceptor(),
                *interceptors,
                ServerMetricsInterceptor(service),
                UnavailableInterceptor(),
            ],
        )
        register(self._server)
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        self._names = list(service_names)
        reflection.enable_server_reflection(
            [*self._names, health.SERVICE_NAME, reflection.SERVICE_NAME], self._server
        )
        self.port = 0

    async def start(self) -> int:
        """Bind, start, report SERVING; return the bound port."""
        if self._credentials is None:
            self.port = self._server.add_insecure_port(self._listen)
        else:
            self.port = self._server.add_secure_port(self._listen, self._credentials)
        if self.port == 0:
            raise RuntimeError(f"cannot listen on {self._listen}")
        await self._server.start()
        self._serving = self._ready is None or self._ready()
        await self._report(serving=self._serving)
        if self._ready is not None:
            self._watcher.start()
        return self.port

    async def _report(self, *, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING
        if not serving:
            status = health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ["", *self._names]:
            await self._health.set(name, status)

    async def _watch(self) -> None:
        """Report a change of readiness to gRPC health."""
        serving = self._ready is None or self._ready()
        if serving != self._serving:
            self._serving = serving
            await self._report(serving=serving)
            log.warning("grpc_health_changed", services=self._names, serving=serving)

    async def stop(self, grace_s: float = 5.0) -> None:
        """Report NOT_SERVING, finish calls in flight, stop."""
        await self._watcher.stop()
        await self._health.enter_graceful_shutdown()
        await self._server.stop(grace_s)


def open_channel(
    target: str, tls: TlsSettings | None = None, *, service: str | None = None
) -> grpc.aio.Channel:
    """A client channel to `target` (``127.0.0.1:50051`` or ``dns:///accounts:50051``);
    over mutual TLS when `tls` is enabled (the server's name must be in its certificate).

    `service` is the paymesh service that calls: its calls are timed under that name
    (``paymesh_grpc_client_handled_seconds``); tools and tests leave it out."""
    options: list[tuple[str, object]] = [
        ("grpc.service_config", _SERVICE_CONFIG),
        ("grpc.enable_retries", 1),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        # gRPC's default reconnect backoff grows to 120 s; a peer that comes
        # back after an outage should be used again within seconds.
        ("grpc.max_reconnect_backoff_ms", 5_000),
    ]
    interceptors = None if service is None else [ClientMetricsInterceptor(service)]
    if tls is None or not tls.enabled:
        return grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)
    return grpc.aio.secure_channel(
        target, channel_credentials(tls), options=options, interceptors=interceptors
    )


class CallOptions(TypedDict):
    """Keyword arguments every stub call takes: identity and deadline."""

    metadata: tuple[tuple[str, str], ...]
    timeout: float


def caller_options(caller: Caller, deadline_s: float) -> CallOptions:
    """Keyword arguments for a stub call: the caller's metadata (and the request id bound
    in this context, if any) and a deadline.

    With tracing on, the metadata also carries the active span's ``traceparent``
    (the callee's server span continues the trace). Not a client interceptor: one
    on a grpc.aio channel makes every call an intercepted call, which costs more
    than the span it would record.
    """
    metadata = caller.metadata()
    request_id = current_request_id()
    if request_id is not None:
        metadata = (*metadata, (METADATA_REQUEST_ID, request_id))
    if (traceparent := current_traceparent()) is not None:
        metadata = (*metadata, (TRACEPARENT, traceparent))
    return {"metadata": metadata, "timeout": deadline_s}


async def require_caller(context: grpc.aio.ServicerContext[object, object]) -> Caller:
    """The caller of this RPC; an RPC without one is refused (UNAUTHENTICATED)."""
    caller = Caller.from_metadata(context.invocation_metadata())
    if caller is None:
        await abort(
            context, grpc.StatusCode.UNAUTHENTICATED, "unauthenticated", "no caller identity"
        )
    return caller


async def abort(
    context: grpc.aio.ServicerContext[object, object],
    status: grpc.StatusCode,
    code: str,
    message: str,
) -> NoReturn:
    """End the RPC with `status`, carrying the stable error `code` in trailing metadata."""
    context.set_trailing_metadata(((METADATA_ERROR_CODE, code),))
    await context.abort(status, message)
    raise AssertionError("unreachable")  # pragma: no cover - abort always raises


def error_code(exc: grpc.aio.AioRpcError) -> str | None:
    """The stable error code a paymesh service attached to a failed call, if any."""
    for key, value in exc.trailing_metadata() or ():
        if key == METADATA_ERROR_CODE:
            return value.decode() if isinstance(value, bytes) else value
    return None
