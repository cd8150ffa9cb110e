"""Idempotency-Key handling for POSTs (see API.md, Conventions).

The first request with a key claims it with one INSERT (the primary key
makes a concurrent second claim fail), runs, and stores its response. The
same key with the same request then replays that response byte for byte;
with another request it is refused (422); while the first still runs, 409.
A 5xx (or a crash of the handler) releases the claim so the client may retry.

A request may have to be admitted first (money-moving ones, see
admission.py); a refusal (429 `overloaded`) comes before the claim, so it
is never stored and a retry with the same key is a first attempt.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from starlette.responses import Response

from paymesh.gateway import domain, meters
from paymesh.gateway.domain import IdempotencyDecision, IdempotencyRecord
from paymesh.gateway.errors import (
    BadRequest,
    Conflict,
    GatewayError,
    IdempotencyKeyRequired,
    Unprocessable,
)
from paymesh.gateway.ports import GatewayStore
from paymesh.gateway.problems import error_response
from paymesh.gateway.security import ResponseSealer
from paymesh.platform.clock import Clock, new_id
from paymesh.platform.logging import get_logger

__all__ = ["REPLAYED_HEADER", "KeyedRequest", "check_key"]

log = get_logger(__name__)

REPLAYED_HEADER = "Idempotent-Replayed"
# Response headers worth replaying (the rest are recomputed by the server).
_KEPT_HEADERS = ("content-type", "location")


def check_key(key: str | None, *, required: bool) -> str | None:
    """The Idempotency-Key, validated: 1-255 printable ASCII characters."""
    if key is None or key == "":
        if required:
            raise IdempotencyKeyRequired("this request moves money: send an Idempotency-Key header")
        return None
    if len(key) > 255 or not key.isascii() or not key.isprintable():
        raise BadRequest(
            "Idempotency-Key must be 1-255 printable ASCII characters",
            code="invalid_idempotency_key",
        )
    return key


@dataclass
class KeyedRequest:
    """One request, with or without an Idempotency-Key, and how to run it once."""

    store: GatewayStore
    clock: Clock
    sealer: ResponseSealer
    ttl_s: int
    stale_after_s: float
    tenant_id: str
    key: str | None
    method: str
    path: str
    body: bytes
    # Where the request waits for its turn to work (None: it works at once).
    admit: Callable[[], AbstractAsyncContextManager[None]] | None = None

    def object_id(self, prefix: str) -> str:
        """The id of what this request creates: derived from the key, else random."""
        if self.key is None:
            return new_id(prefix)
        return domain.derive_id(prefix, tenant_id=self.tenant_id, key=self.key, path=self.path)

    async def run(self, handler: Callable[[], Awaitable[Response]]) -> Response:
        """Run `handler` at most once per key (replaying its first response), once admitted."""
        if self.admit is None:
            return await self._run_once(handler)
        async with self.admit():  # refused: nothing claimed, nothing done
            return await self._run_once(handler)

    async def _run_once(self, handler: Callable[[], Awaitable[Response]]) -> Response:
        if self.key is None:
            return await handler()
        claimed = await self._claim()
        if isinstance(claimed, Response):
            return claimed
        try:
            response = await handler()
        except GatewayError as exc:
            response = error_response(exc)
        except BaseException:
            await self._release(claimed)
            raise
        if response.status_code >= 500:
            await self._release(claimed)
            return response
        headers = {k: v for k in _KEPT_HEADERS if (v := response.headers.get(k)) is not None}
        sealed = self.sealer.seal(bytes(response.body), context=self._context)
        if not await self.store.complete_idempotency(
            claimed, status=response.status_code, headers=headers, body=sealed
        ):
            log.warning("idempotency_claim_lost", tenant_id=self.tenant_id, path=self.path)
        return response

    async def _claim(self) -> IdempotencyRecord | Response:
        assert self.key is not None
        fp = domain.fingerprint(self.method, self.path, self.body)
        now = self.clock.now_us()
        mine = IdempotencyRecord(
            tenant_id=self.tenant_id,
            key=self.key,
            fingerprint=fp,
            state="in_progress",
            owner=secrets.token_hex(16),
            created_at_us=now,
            expires_at_us=now + self.ttl_s * 1_000_000,
        )
        for _attempt in range(5):
            if await self.store.claim_idempotency(mine):
                meters.idempotency("first")
                return mine
            existing = await self.store.get_idempotency(self.tenant_id, self.key)
            if existing is None:
                continue  # released meanwhile: claim again
            decision = domain.decide_idempotency(
                existing, fp, now_us=now, stale_after_us=int(self.stale_after_s * 1_000_000)
            )
            if decision is IdempotencyDecision.REPLAY:
                meters.idempotency("replayed")
                return self._replay(existing)
            if decision is IdempotencyDecision.REUSED:
                meters.idempotency("conflict")
                raise Unprocessable(
                    "this Idempotency-Key was used for another request",
                    code="idempotency_key_reused",
                )
            if decision is IdempotencyDecision.IN_PROGRESS:
                break
            if await self.store.take_over_idempotency(existing, mine):
                meters.idempotency("first")
                return mine
        meters.idempotency("in_progress")
        raise Conflict(
            "a request with this Idempotency-Key is still in progress; retry later",
            code="idempotency_key_in_progress",
            headers={"Retry-After": "1"},
        )

    @property
    def _context(self) -> str:
        return f"{self.tenant_id}\x00{self.key}"

    def _replay(self, record: IdempotencyRecord) -> Response:
        headers = dict(record.response_headers or {})
        headers[REPLAYED_HEADER] = "true"
        body = self.sealer.open(record.response_body or b"", context=self._context)
        return Response(content=body, status_code=record.response_status or 200, headers=headers)

    async def _release(self, record: IdempotencyRecord) -> None:
        try:
            await self.store.release_idempotency(record)
        except Exception:  # the claim then goes stale and is taken over later
            log.exception("idempotency_release_failed", tenant_id=self.tenant_id)
