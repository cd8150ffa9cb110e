"""The webhooks worker's metrics through the running service and a real HTTP receiver:
attempts by outcome with their duration, and endpoints disabled."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from paymesh.contracts.webhooks.v1 import webhooks_pb2
from paymesh.platform.clock import SystemClock
from paymesh.webhooks.domain import ATTEMPT_OUTCOMES, AttemptResult, attempt_outcome
from tests.integration.webhooks.conftest import Receiver, Reply, StartWebhooks, payment_event, until

pytestmark = pytest.mark.timeout(60)


class TickingClock:
    """The real time plus 10 s more at every reading: each retry is due at once."""

    def __init__(self) -> None:
        self.value = SystemClock().now_us()

    def now_us(self) -> int:
        self.value += 10_000_000
        return self.value


def _attempts(outcome: str) -> float:
    labels = {"service": "webhooks", "outcome": outcome}
    return REGISTRY.get_sample_value("paymesh_webhook_attempts_total", labels) or 0.0


def _duration(outcome: str, stat: str) -> float:
    labels = {"service": "webhooks", "outcome": outcome}
    name = f"paymesh_webhook_attempt_duration_seconds_{stat}"
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _disabled() -> float:
    labels = {"service": "webhooks"}
    return REGISTRY.get_sample_value("paymesh_webhook_endpoints_disabled_total", labels) or 0.0


async def test_each_attempt_is_counted_by_outcome_with_its_duration(
    start_webhooks: StartWebhooks, receiver: Receiver
) -> None:
    receiver.reply = lambda n: Reply(status=[503, 404, 200][min(n, 2)], delay_s=0.05)
    before = {
        o: (_attempts(o), _duration(o, "count")) for o in ("http_5xx", "http_4xx", "delivered")
    }
    took = _duration("delivered", "sum")
    running = await start_webhooks(clock=TickingClock())
    await running.create(receiver.url)
    await running.publish(payment_event())

    async def succeeded() -> bool:
        ds = await running.deliveries()
        return bool(ds) and ds[0].status == webhooks_pb2.DELIVERY_STATUS_SUCCEEDED

    await until(succeeded)
    for outcome, (count, observed) in before.items():
        assert _attempts(outcome) == count + 1, outcome
        assert _duration(outcome, "count") == observed + 1, outcome
    assert _duration("delivered", "sum") - took >= 0.05  # the receiver's delay, at least


async def test_a_slow_receiver_counts_a_timeout(
    start_webhooks: StartWebhooks, receiver: Receiver
) -> None:
    release = asyncio.Event()
    receiver.reply = lambda n: Reply(status=200, hold=release)
    timeouts = _attempts("timeout")
    running = await start_webhooks(request_timeout_s=0.3, retry_base_s=3600)
    await running.create(receiver.url)
    await running.publish(payment_event())

    async def timed_out() -> bool:
        return _attempts("timeout") == timeouts + 1

    try:
        await until(timed_out)
    finally:
        release.set()


async def test_an_endpoint_disabled_for_failing_too_long_is_counted_once(
    start_webhooks: StartWebhooks, receiver: Receiver
) -> None:
    receiver.reply = lambda n: Reply(status=500)
    disabled = _disabled()
    running = await start_webhooks(disable_after_s=0.3, retry_max_delay_s=0.05)
    await running.create(receiver.url)
    await running.publish(payment_event(1))

    async def counted() -> bool:
        return _disabled() > disabled

    await until(counted)
    await asyncio.sleep(0.3)  # more failures of its deliveries do not count it again
    assert _disabled() == disabled + 1


def test_every_attempt_result_maps_to_one_outcome_of_the_closed_set() -> None:
    cases = {
        (200, ""): "delivered",
        (204, ""): "delivered",
        (302, "http_302"): "http_3xx",
        (429, "http_429"): "http_4xx",
        (500, "http_500"): "http_5xx",
        (101, "http_101"): "http_other",
        (0, "timeout"): "timeout",
        (0, "address_refused"): "refused",
        (0, "connection_error"): "connection_error",
        (0, "request_error"): "error",
        (0, "internal_error"): "error",
    }
    for (status, error), outcome in cases.items():
        result = AttemptResult(status_code=status, error=error, latency_ms=1)
        assert attempt_outcome(result) == outcome, (status, error)
        assert outcome in ATTEMPT_OUTCOMES
