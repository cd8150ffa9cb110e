"""OpenTelemetry traces of the distributed shape: a process per service, each told by
the standard OTEL_* variables to export to a real OTLP/HTTP receiver in the test; one
payment sent with a known traceparent is one trace across the processes, and across
Kafka into the consumers."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from paymesh.launcher import SERVICES

from .otlp import OtlpReceiver, otel_env, traceparent
from .receiver import Receiver
from .test_distributed import Distributed, distributed_platform
from .test_tracing import (
    assert_attempt_linked,
    assert_one_trace,
    complete,
    pay_with_traceparent,
    services_of,
)


@pytest.fixture(scope="module")
def otlp() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture(scope="module")
def traced(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory, otlp: OtlpReceiver
) -> Iterator[Distributed]:
    workdir: Path = tmp_path_factory.mktemp("traced")
    with distributed_platform(workdir, kafka_bootstrap, env=otel_env(otlp.endpoint)) as p:
        yield p


async def test_one_payment_sent_with_a_traceparent_is_one_trace_across_the_processes(
    traced: Distributed, otlp: OtlpReceiver
) -> None:
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    hooks = Receiver()
    await hooks.start()
    try:
        await pay_with_traceparent(
            traced.url, traced.creds, traceparent(trace_id, caller_span), webhook_url=hooks.url
        )
        [delivered] = await hooks.wait_for(1)
    finally:
        await hooks.stop()
    spans = await asyncio.to_thread(otlp.wait_until, lambda spans: complete(spans, trace_id), 90)
    assert_one_trace(spans, trace_id, caller_span)
    # Each process exported under its service's name.
    assert services_of(spans) == set(SERVICES), services_of(spans)
    assert_attempt_linked(spans, trace_id, delivered)


# Its module-scoped fixture (a platform, a rendered chart, a browser) is made once, on one
# worker (`make test` runs pytest-xdist with --dist loadgroup).
pytestmark = pytest.mark.xdist_group("test_distributed_tracing")
