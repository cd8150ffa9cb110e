"""Outgoing HTTP to merchants' URLs, safe for us: addresses checked after DNS,
the connection made to the checked address, bodies read with a cap.

:func:`checked_addresses` is the one check, made when an endpoint is created
(:func:`check_url`) and again before every connection: the host as the HTTP
client reads it, canonicalised (numeric IPv4 forms such as ``0x7f.1``), refused
outright when it is a non-public address or a local or metadata name (see
:func:`paymesh.webhooks.domain.host_refusal`), else resolved and refused when
ANY address is not a public unicast one.

:class:`GuardedBackend` is an httpcore network backend. Its ``connect_tcp``
makes that check and then connects to the address it checked, so a DNS answer that changes between
the check and the connection (DNS rebinding) cannot send us elsewhere. TLS
still verifies the certificate against, and sends SNI for, the URL's host
name: httpcore passes that name to ``start_tls`` itself.

Keep-alive is off (:func:`new_client`): every attempt opens a new connection,
so every attempt is checked.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import time
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

import httpcore
import httpx

from paymesh.platform.logging import get_logger
from paymesh.webhooks.domain import AttemptResult, address_refusal, canonical_host, host_refusal
from paymesh.webhooks.errors import InvalidRequest

__all__ = [
    "RESOLVE_TIMEOUT_S",
    "AddressRefused",
    "GuardedBackend",
    "HostUnresolved",
    "Resolver",
    "check_url",
    "checked_addresses",
    "new_client",
    "post",
    "read_capped",
    "system_resolver",
]

log = get_logger(__name__)

Resolver = Callable[[str, int], Awaitable[list[str]]]

# How long creating an endpoint waits for DNS: below the gateway's RPC deadline (5 s).
RESOLVE_TIMEOUT_S = 3.0


class AddressRefused(Exception):
    """The host is, or resolves to, an address we never call (private, loopback, metadata, …)."""


class HostUnresolved(Exception):
    """The host name has no address (or DNS did not answer in time: `timed_out`)."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (the event loop's getaddrinfo, in a thread)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def checked_addresses(
    host: str, port: int, *, allow_private: bool, resolver: Resolver, timeout_s: float | None
) -> list[str]:
    """The addresses to connect to for `host`, every one of them allowed.

    Raises :class:`AddressRefused` (with the reason) or :class:`HostUnresolved`.
    With `allow_private` nothing is refused, but the host is still resolved.
    """
    if not allow_private:
        why = host_refusal(host)
        if why is not None:
            raise AddressRefused(f"host {host!r} {why}")
    found = canonical_host(host)
    if not isinstance(found, str):
        return [str(found)]
    try:
        async with asyncio.timeout(timeout_s):
            answered = await resolver(found, port)
    except TimeoutError:
        raise HostUnresolved(
            f"host {host!r} did not resolve within {timeout_s} s", timed_out=True
        ) from None
    except OSError as exc:
        raise HostUnresolved(f"host {host!r} does not resolve ({exc.strerror})") from None
    addresses = list(dict.fromkeys(answered))
    if not addresses:
        raise HostUnresolved(f"host {host!r} has no address")
    for address in addresses:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            raise AddressRefused("the resolver answered something other than an IP") from None
        why = address_refusal(ip)
        if why is not None and not allow_private:
            raise AddressRefused(f"host {host!r} resolves to {why.removeprefix('is ')}")
    return addresses


async def check_url(
    url: str,
    *,
    allow_private: bool,
    resolver: Resolver | None = None,
    timeout_s: float = RESOLVE_TIMEOUT_S,
) -> None:
    """Refuse, when an endpoint is made, a URL that every delivery attempt would refuse.

    The host is read as httpx reads it and checked by :func:`checked_addresses`.
    A name that does not resolve (or not within `timeout_s`) is refused as well:
    nothing could be delivered to it, and it could not be checked.
    Raises :class:`InvalidRequest` naming the url and the reason.
    """
    if allow_private:
        return
    try:
        parsed = httpx.URL(url)
        host = parsed.raw_host.decode("ascii")
    except (httpx.InvalidURL, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"url is malformed: {exc}") from None
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        await checked_addresses(
            host,
            port,
            allow_private=False,
            resolver=resolver or system_resolver,
            timeout_s=timeout_s,
        )
    except (AddressRefused, HostUnresolved) as exc:
        raise InvalidRequest(f"url refused: {exc}") from None


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolve, check every address, connect to a checked one."""

    def __init__(self, *, allow_private: bool, resolver: Resolver | None = None) -> None:
        self._allow_private = allow_private
        self._resolve = resolver or system_resolver
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await checked_addresses(
                host,
                port,
                allow_private=self._allow_private,
                resolver=self._resolve,
                timeout_s=timeout,
            )
        except HostUnresolved as exc:
            if exc.timed_out:
                raise httpcore.ConnectTimeout("name resolution timed out") from None
            raise httpcore.ConnectError(str(exc)) from None
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AddressRefused("unix sockets are never called")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a connection pool that uses :class:`GuardedBackend`."""

    def __init__(self, backend: GuardedBackend, ssl_context: ssl.SSLContext | None) -> None:
        super().__init__(trust_env=False, retries=0)
        # httpx builds its pool without a network_backend argument; swap it for
        # one that has ours (httpx 0.28 / httpcore 1.0 keep it in `_pool`).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or httpx.create_ssl_context(trust_env=False),
            max_connections=None,
            max_keepalive_connections=0,
            keepalive_expiry=0,
            http1=True,
            http2=False,
            retries=0,
            network_backend=backend,
        )


def new_client(
    *,
    allow_private: bool,
    timeout_s: float,
    resolver: Resolver | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> httpx.AsyncClient:
    """The HTTP client deliveries go out with: guarded, no redirects, no proxies from env.

    TLS verifies against the system's CAs unless `ssl_context` says otherwise (tests).
    """
    backend = GuardedBackend(allow_private=allow_private, resolver=resolver)
    return httpx.AsyncClient(
        transport=_GuardedTransport(backend, ssl_context),
        timeout=httpx.Timeout(timeout_s),
        follow_redirects=False,
        trust_env=False,
    )


async def read_capped(chunks: AsyncIterator[bytes], cap: int) -> int:
    """Consume `chunks` until `cap` bytes were read (or they end); return bytes read."""
    total = 0
    if cap <= 0:
        return 0
    async for chunk in chunks:
        total += len(chunk)
        if total >= cap:
            break
    return min(total, cap)


async def post(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout_s: float,
    max_response_bytes: int,
    log_fields: dict[str, typing.Any] | None = None,
) -> AttemptResult:
    """POST `body` to `url` once; the outcome as an :class:`AttemptResult`.

    The whole attempt (resolution, connection, upload, reading the capped
    response) is bounded by `timeout_s`. Errors: ``timeout``,
    ``address_refused``, ``connection_error``, ``request_error``, or
    ``http_<status>`` for a response that is not 2xx.
    """
    started = time.monotonic()
    status_code, error = 0, ""
    try:
        async with asyncio.timeout(timeout_s):
            async with client.stream("POST", url, content=body, headers=headers) as response:
                status_code = response.status_code
                await read_capped(response.aiter_raw(), max_response_bytes)
    except AddressRefused:
        error = "address_refused"
    except (TimeoutError, httpx.TimeoutException):
        error = "timeout"
    except httpx.TransportError:
        error = "connection_error"
    except Exception as exc:
        # Never log the URL: its query string may carry a token.
        log.warning("webhook_request_error", error_type=type(exc).__name__, **(log_fields or {}))
        error = "request_error"
    latency_ms = int((time.monotonic() - started) * 1000)
    if not error and not 200 <= status_code < 300:
        error = f"http_{status_code}"
    return AttemptResult(status_code=status_code, error=error, latency_ms=latency_ms)
