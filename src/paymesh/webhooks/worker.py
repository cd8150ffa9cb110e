"""The delivery worker: claims due deliveries and POSTs them, signed, one attempt each.

Each attempt is a task; at most ``max_in_flight`` run in this process and at
most ``max_in_flight_per_endpoint`` per endpoint across every replica (the
store counts leases). The outcome, the next attempt's time and any
disabling of the endpoint are recorded in one transaction
(:meth:`~paymesh.webhooks.store.SqlWebhooksStore.finish`). A replica that dies
mid-attempt leaves a lease that expires; the delivery is then attempted again
(at least once: merchants deduplicate by ``Paymesh-Event-Id``).

With tracing on, each attempt is a CLIENT span of its own, linked to the trace
the event was produced in (its ``traceparent``), and the request carries the
attempt's ``traceparent`` header.
"""

from __future__ import annotations

import functools
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from opentelemetry.trace import SpanKind, StatusCode

from paymesh import __version__
from paymesh.platform.clock import Clock
from paymesh.platform.logging import get_logger
from paymesh.platform.loops import Background, Periodic
from paymesh.platform.metrics import (
    WEBHOOK_ATTEMPT_DURATION,
    WEBHOOK_ATTEMPTS,
    WEBHOOK_ENDPOINTS_DISABLED,
)
from paymesh.platform.tracing import OFF, Tracing
from paymesh.webhooks.domain import (
    AfterAttempt,
    AttemptResult,
    Delivery,
    RetryPolicy,
    after_attempt,
    attempt_outcome,
)
from paymesh.webhooks.events import endpoint_disabled, reason_failing_since
from paymesh.webhooks.sealing import SecretBox
from paymesh.webhooks.signature import signature_header
from paymesh.webhooks.store import Claimed, SqlWebhooksStore
from paymesh.webhooks.transport import post

__all__ = ["USER_AGENT", "DeliveryWorker", "WorkerConfig"]

log = get_logger(__name__)

USER_AGENT = f"paymesh-webhooks/{__version__}"
_PRUNE_EVERY_US = 3600 * 1_000_000
SERVICE = "webhooks"
_DISABLED = WEBHOOK_ENDPOINTS_DISABLED.labels(service=SERVICE)


@functools.cache
def _meters(outcome: str) -> tuple[Any, Any]:
    return (
        WEBHOOK_ATTEMPTS.labels(service=SERVICE, outcome=outcome),
        WEBHOOK_ATTEMPT_DURATION.labels(service=SERVICE, outcome=outcome),
    )


@dataclass(frozen=True)
class WorkerConfig:
    """How the worker runs (from ``settings.webhooks``)."""

    policy: RetryPolicy
    request_timeout_s: float
    max_response_bytes: int
    max_in_flight: int
    max_in_flight_per_endpoint: int
    poll_interval_s: float
    retention_s: float = 30 * 24 * 3600

    @property
    def lease_us(self) -> int:
        """How long a claimed delivery stays another replica's: well past the timeout."""
        return int((2 * self.request_timeout_s + 30) * 1_000_000)


class DeliveryWorker:
    """Attempts due deliveries until stopped."""

    def __init__(
        self,
        store: SqlWebhooksStore,
        *,
        box: SecretBox,
        client: httpx.AsyncClient,
        config: WorkerConfig,
        clock: Clock,
        jitter: Callable[[], float] = random.random,
        tracing: Tracing = OFF,
    ) -> None:
        self._store = store
        self._tracing = tracing
        self._box = box
        self._client = client
        self._config = config
        self._clock = clock
        self._jitter = jitter
        self._loop = Periodic("webhooks-worker", self._step, interval_s=config.poll_interval_s)
        self._in_flight = Background("webhook-attempt")
        self._next_prune_us = 0

    @property
    def in_flight(self) -> int:
        """Attempts running in this process now."""
        return len(self._in_flight)

    def notify(self) -> None:
        """New deliveries are due: look at once."""
        self._loop.wake()

    def start(self) -> None:
        """Run the worker in the background."""
        self._loop.start()

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop claiming; give attempts in flight `grace_s` to finish, then cancel them."""
        await self._loop.stop()
        await self._in_flight.stop(grace_s)

    async def run_once(self) -> int:
        """Claim what is due and start its attempts; return how many started."""
        free = self._config.max_in_flight - len(self._in_flight)
        claimed = await self._store.claim(
            now_us=self._clock.now_us(),
            limit=free,
            max_per_endpoint=self._config.max_in_flight_per_endpoint,
            lease_us=self._config.lease_us,
        )
        for item in claimed:
            task = self._in_flight.spawn(self._attempt(item), name=f"webhook-{item.delivery.id}")
            # A finished attempt frees a place: look for more at once.
            task.add_done_callback(lambda _: self._loop.wake())
        return len(claimed)

    async def _step(self) -> None:
        await self.run_once()
        await self._prune()

    async def _prune(self) -> None:
        """Once an hour, forget deliveries, events and inbox entries past retention."""
        now = self._clock.now_us()
        if now < self._next_prune_us:
            return
        self._next_prune_us = now + _PRUNE_EVERY_US
        before = now - int(self._config.retention_s * 1_000_000)
        while (gone := await self._store.prune(before_us=before)) > 0:
            log.info("webhooks_pruned", rows=gone)

    async def _attempt(self, item: Claimed) -> None:
        delivery, record = item.delivery, item.record
        endpoint = record.endpoint
        fields = {
            "delivery_id": delivery.id,
            "endpoint_id": endpoint.id,
            "host": urlsplit(endpoint.url).hostname or "",
            "attempt": delivery.attempts_count + 1,
        }
        started = self._clock.now_us()
        began = time.monotonic()
        try:
            if self._tracing.enabled:
                result = await self._traced_post(item, started, fields)
            else:
                result = await self._post(item, started, fields)
        except Exception:
            log.exception("webhook_attempt_broken", **fields)
            result = AttemptResult(status_code=0, error="internal_error", latency_ms=0)
        attempts, duration = _meters(attempt_outcome(result))
        attempts.inc()
        duration.observe(time.monotonic() - began)
        now = self._clock.now_us()

        def decide(d: Delivery, enabled: bool, failing_since: int | None) -> AfterAttempt:
            return after_attempt(
                d,
                result,
                started_at_us=started,
                now_us=now,
                endpoint_enabled=enabled,
                failing_since_us=failing_since,
                policy=self._config.policy,
                jitter=self._jitter(),
            )

        try:
            updated, _after, disabled = await self._store.finish(
                item,
                result,
                started_at_us=started,
                decide=decide,
                disabled_event=lambda ep, why: endpoint_disabled(ep, why, now_us=now),
                reason=reason_failing_since,
            )
        except Exception:
            # The lease expires and the delivery is attempted again.
            log.exception("webhook_attempt_not_recorded", **fields)
            return
        log.info(
            "webhook_attempt",
            **fields,
            status_code=result.status_code,
            error=result.error,
            latency_ms=result.latency_ms,
            delivery_status=updated.status.value,
        )
        if disabled is not None:
            _DISABLED.inc()
            log.warning(
                "webhook_endpoint_disabled",
                endpoint_id=endpoint.id,
                host=fields["host"],
                reason=disabled.disabled_reason,
            )

    async def _traced_post(
        self, item: Claimed, started_us: int, fields: dict[str, object]
    ) -> AttemptResult:
        """:meth:`_post` in a CLIENT span linked to the event's trace."""
        try:
            traceparent = json.loads(item.payload).get("traceparent")
        except (ValueError, AttributeError):
            traceparent = None
        with self._tracing.span(
            "webhook POST",
            kind=SpanKind.CLIENT,
            linked_to=traceparent if isinstance(traceparent, str) else None,
            attributes={
                "http.request.method": "POST",
                "server.address": str(fields["host"]),
                "paymesh.webhook.delivery_id": item.delivery.id,
                "paymesh.webhook.endpoint_id": item.record.endpoint.id,
                "paymesh.webhook.attempt": item.delivery.attempts_count + 1,
                "cloudevents.event_id": item.delivery.event_id,
                "cloudevents.event_type": item.delivery.event_type,
            },
        ) as span:
            result = await self._post(item, started_us, fields)
            if span is not None:
                if result.status_code:
                    span.set_attribute("http.response.status_code", result.status_code)
                if result.error:
                    span.set_attribute("error.type", result.error)
                    span.set_status(StatusCode.ERROR)
            return result

    async def _post(
        self, item: Claimed, started_us: int, fields: dict[str, object]
    ) -> AttemptResult:
        delivery, record = item.delivery, item.record
        endpoint = record.endpoint
        secrets = [self._box.open(record.secret_sealed, endpoint.id)]
        expires = endpoint.previous_secret_expires_at_us
        if record.previous_secret_sealed and expires is not None and expires > started_us:
            secrets.append(self._box.open(record.previous_secret_sealed, endpoint.id))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Accept-Encoding": "identity",
            "Paymesh-Event-Id": delivery.event_id,
            "Paymesh-Event-Type": delivery.event_type,
            "Paymesh-Delivery-Id": delivery.id,
            "Paymesh-Signature": signature_header(item.payload, secrets, started_us // 1_000_000),
        }
        if self._tracing.enabled:
            self._tracing.inject(headers)
        return await post(
            self._client,
            endpoint.url,
            item.payload,
            headers,
            timeout_s=self._config.request_timeout_s,
            max_response_bytes=self._config.max_response_bytes,
            log_fields=fields,
        )
