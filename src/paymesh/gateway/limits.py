"""Abuse limits at the HTTP edge: request body size, request time, rate-limit headers,
and the budget of failed credential attempts.

`LimitsMiddleware` refuses a body over `max_body_bytes` with 413
`payload_too_large` (from Content-Length before reading anything, or after
reading at most the cap plus one chunk of a chunked body), answers 504
`request_timeout` to a request still unanswered after `timeout_s` (and
records that deadline in the request's state, `DEADLINE_KEY`, as
`time.monotonic()` seconds), and adds the rate-limit headers of the
request's decision to every response.

`charge_failures` takes a token from each failure bucket of an attempt
*before* the attempt runs (a client-credential check costs a slow hash), and
gives them back unless the attempt failed authentication: only failures use
up the budget, and a flood is refused before it costs anything.

Rate-limit headers follow draft-ietf-httpapi-ratelimit-headers (the
structured-field form)::

    RateLimit-Policy: "client";q=100;w=2    (bucket capacity; seconds to refill it from empty)
    RateLimit: "client";r=17;t=1            (whole tokens left; seconds until it is full again)

A refused request (429 `rate_limited`) also has `Retry-After`: whole seconds,
at least 1, until a token is back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paymesh.gateway.asgi import HttpMiddleware, TrackedSend
from paymesh.gateway.errors import RateLimited, Unauthenticated
from paymesh.gateway.problems import problem_response
from paymesh.gateway.ratelimit import Decision, Policy, RateLimiter
from paymesh.platform.logging import get_logger

__all__ = [
    "DEADLINE_KEY",
    "STATE_KEY",
    "LimitsMiddleware",
    "charge_failures",
    "enforce",
    "rate_limit_headers",
]

log = get_logger(__name__)

STATE_KEY = "rate_limit"
DEADLINE_KEY = "deadline"


def rate_limit_headers(decision: Decision) -> dict[str, str]:
    """The IETF RateLimit and RateLimit-Policy headers of a decision (none when degraded)."""
    if decision.degraded or decision.policy is None:
        return {}
    p = decision.policy
    return {
        "RateLimit-Policy": f'"{p.name}";q={p.capacity};w={p.window_s}',
        "RateLimit": f'"{p.name}";r={decision.remaining};t={decision.reset_s}',
    }


async def enforce(request: Request, limiter: RateLimiter, key: str) -> None:
    """Take a token for `key`; 429 `rate_limited` with Retry-After when there is none."""
    decision = await limiter.hit(key)
    request.scope.setdefault("state", {})[STATE_KEY] = decision
    if not decision.allowed:
        _refuse(decision, key)


# The limit a bucket's key belongs to, by the key's prefix (the metric's label).
_LIMIT_OF_KEY = {
    "client": "client",
    "token": "token",
    "addr": "token",
    "authfail": "auth_failures",
    "credfail": "auth_failures",
    "consolefail": "auth_failures",
}


def _refuse(decision: Decision, key: str) -> None:
    log.info("rate_limited", key=key, retry_after_s=decision.retry_after_s)
    raise RateLimited(
        f"too many requests: retry in {decision.retry_after_s} s",
        headers={"Retry-After": str(decision.retry_after_s)},
        limit=_LIMIT_OF_KEY.get(key.partition(":")[0], "other"),
    )


@asynccontextmanager
async def charge_failures(
    request: Request, limiter: RateLimiter, policy: Policy, keys: Sequence[str]
) -> AsyncIterator[None]:
    """Charge the attempt inside to every bucket of `keys` first (429 if one is empty).

    The charge stays if the attempt fails authentication (Unauthenticated
    leaves the block); a success, or any other end, gives the tokens back.
    """
    taken: list[str] = []
    for key in keys:
        decision = await limiter.hit(key, policy)
        if not decision.allowed:
            for earlier in taken:
                await limiter.refund(earlier, policy)
            request.scope.setdefault("state", {})[STATE_KEY] = decision
            _refuse(decision, key)
        taken.append(key)
    failed = False
    try:
        yield
    except Unauthenticated:
        failed = True
        raise
    finally:
        if not failed:
            for key in taken:
                await limiter.refund(key, policy)


class LimitsMiddleware(HttpMiddleware):
    """Body size and request time limits, and the rate-limit headers on every answer."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        timeout_s: float,
        larger: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__(app)
        self.max_body_bytes = max_body_bytes
        self.timeout_s = timeout_s
        # Paths that take larger bodies (a bank statement file), with their own cap.
        self.larger = dict(larger or {})

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        cap = self.larger.get(scope.get("path", ""), self.max_body_bytes)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > cap):
            await self._too_large(scope, receive, send, cap)
            return
        body: list[bytes] = []
        size = 0
        while True:  # read at most the cap (plus one chunk), never an unbounded body
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > cap:
                await self._too_large(scope, receive, send, cap)
                return
            body.append(chunk)
            if not message.get("more_body", False):
                break
        await self._run(scope, _replay(b"".join(body), receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, cap: int) -> None:
        response = problem_response(
            413,
            "payload_too_large",
            f"the request body is larger than {cap} bytes",
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)

    async def _run(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def _send(message: Message) -> None:
            if message["type"] == "http.response.start":
                decision = scope.get("state", {}).get(STATE_KEY)
                if isinstance(decision, Decision):
                    have = {k.lower() for k, _ in message.get("headers", [])}
                    extra = [
                        (k.lower().encode(), v.encode())
                        for k, v in rate_limit_headers(decision).items()
                        if k.lower().encode() not in have
                    ]
                    message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        tracked = TrackedSend(_send)
        scope.setdefault("state", {})[DEADLINE_KEY] = time.monotonic() + self.timeout_s
        timer = asyncio.timeout(self.timeout_s)
        try:
            async with timer:
                await self.app(scope, receive, tracked)
        except TimeoutError:
            if not timer.expired():
                raise
            log.warning("request_timeout", path=scope.get("path"), method=scope.get("method"))
            if tracked.started:  # the answer is half sent: nothing better than closing it
                return
            response = problem_response(
                504, "request_timeout", f"the request took longer than {self.timeout_s:g} s"
            )
            await response(scope, receive, tracked)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the already read body once, then waits on the real one."""
    sent = False

    async def _receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return _receive
