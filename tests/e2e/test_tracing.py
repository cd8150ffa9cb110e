"""OpenTelemetry traces of the embedded platform (all five services in this process),
collected by a real OTLP/HTTP receiver: one payment sent with a known traceparent is
one trace through gateway, payments, risk and accounts, and the event it produced
carries that trace into its consumers and its webhook delivery."""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace

from paymesh.cli import bootstrap
from paymesh.contracts.events import TOPIC_PAYMENTS, Event
from paymesh.launcher import SERVICES, Platform
from paymesh.platform.tracing import OFF

from .conftest import Api, Running, embedded_settings
from .otlp import OtlpReceiver, ReceivedSpan, otel_env, traceparent
from .receiver import Received, Receiver

SYNC_PATH = ("gateway", "payments", "risk", "accounts")


@pytest.fixture
def otlp() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture
async def traced(
    tmp_path: Path, ports: dict[str, int], otlp: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Running]:
    """The embedded platform with the standard OTEL_* variables set for this process
    (before the settings are read and the providers built; restored afterwards)."""
    for name, value in otel_env(otlp.endpoint).items():
        monkeypatch.setenv(name, value)
    platform = Platform(embedded_settings(tmp_path / "var", ports))
    await platform.start()
    try:
        creds = await bootstrap(platform)
        yield Running(platform, f"http://127.0.0.1:{ports['gateway']}", creds)
    finally:
        await platform.stop()


async def pay_with_traceparent(
    url: str, creds: dict[str, str], header: str, *, webhook_url: str | None = None
) -> str:
    """Top up a customer, then one automatic payment sent with `header` as traceparent
    (a webhook endpoint for payment.succeeded first, when given); returns the payment id."""
    api = await Api.login(url, creds["client_id"], creds["client_secret"])
    try:
        if webhook_url is not None:
            await api.post(
                "/v1/webhook_endpoints",
                {"url": webhook_url, "events": ["payment.succeeded"]},
                key=str(uuid.uuid4()),
            )
        accounts = []
        for kind in ("customer", "merchant"):
            acct = await api.post(
                "/v1/accounts", {"currency": "USD", "type": kind}, key=str(uuid.uuid4())
            )
            accounts.append(acct["id"])
        customer, merchant = accounts
        await api.post(
            "/v1/topups",
            {"account_id": customer, "amount": 10_000, "currency": "USD"},
            key=str(uuid.uuid4()),
        )
        r = await api.http.post(
            "/v1/payments",
            json={
                "payer_account_id": customer,
                "payee_account_id": merchant,
                "amount": 2_500,
                "currency": "USD",
                "capture_method": "automatic",
            },
            headers={"Idempotency-Key": str(uuid.uuid4()), "traceparent": header},
        )
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "succeeded"
        return str(r.json()["id"])
    finally:
        await api.close()


def services_of(spans: list[ReceivedSpan]) -> set[str]:
    return {s.service for s in spans}


def complete(spans: list[ReceivedSpan], trace_id: str) -> bool:
    """Whether the spans of the whole payment have arrived: the synchronous path, both
    consumers and the webhook attempt."""
    ours = [s for s in spans if s.trace_id == trace_id]
    return (
        set(SYNC_PATH) <= services_of(ours)
        and any(s.kind == "consumer" and s.service == "risk" for s in ours)
        and any(s.kind == "consumer" and s.service == "webhooks" for s in ours)
        and any(s.kind == "client" and s.service == "webhooks" for s in spans)
    )


def assert_one_trace(spans: list[ReceivedSpan], trace_id: str, caller_span: str) -> None:
    """The synchronous path is one trace under the caller's span, and the payment event's
    consumer in risk continues it (a CONSUMER span, child of a payments span)."""
    ours = [s for s in spans if s.trace_id == trace_id]
    assert set(SYNC_PATH) <= services_of(ours), sorted(services_of(ours))
    by_id = {s.span_id: s for s in ours}
    http = [s for s in ours if s.service == "gateway" and s.kind == "server"]
    assert any(s.parent_span_id == caller_span and s.name == "POST /v1/payments" for s in http), [
        (s.name, s.parent_span_id) for s in http
    ]
    # gateway -> payments -> risk and accounts: each server span's parent is a span of its
    # caller (the context travels in the call's metadata), in the same trace.
    for callee, caller in (("payments", "gateway"), ("risk", "payments"), ("accounts", "payments")):
        servers = [s for s in ours if s.service == callee and s.kind == "server"]
        parents = {by_id[s.parent_span_id].service for s in servers if s.parent_span_id in by_id}
        assert caller in parents, (callee, [(s.name, s.parent_span_id) for s in servers])
    consumers = [
        s
        for s in ours
        if s.service == "risk" and s.kind == "consumer" and s.name == f"process {TOPIC_PAYMENTS}"
    ]
    assert consumers, sorted({(s.service, s.kind, s.name) for s in ours})
    assert any(
        s.parent_span_id in by_id and by_id[s.parent_span_id].service == "payments"
        for s in consumers
    )


async def test_one_payment_sent_with_a_traceparent_is_one_trace_across_every_service(
    traced: Running, otlp: OtlpReceiver
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

    spans = await asyncio.to_thread(otlp.wait_until, lambda spans: complete(spans, trace_id))
    assert_one_trace(spans, trace_id, caller_span)
    # Every service exported under its own name, not the process's.
    assert services_of(spans) == set(SERVICES), services_of(spans)
    assert_attempt_linked(spans, trace_id, delivered)


def assert_attempt_linked(spans: list[ReceivedSpan], trace_id: str, delivered: Received) -> None:
    """The webhooks consumer continues the trace too; the delivery attempt is a CLIENT
    span of a trace of its own, LINKED to the payments span that produced the event."""
    ours = {s.span_id: s for s in spans if s.trace_id == trace_id}
    assert any(s.service == "webhooks" and s.kind == "consumer" for s in ours.values())
    [attempt] = [s for s in spans if s.service == "webhooks" and s.kind == "client"]
    assert attempt.trace_id != trace_id
    [(linked_trace, linked_span)] = attempt.links
    assert linked_trace == trace_id
    assert ours[linked_span].service == "payments"
    assert attempt.attributes["http.response.status_code"] == 200
    # The merchant's request carries the attempt's context, and the event its producer's.
    assert delivered.headers["traceparent"].split("-")[1:3] == [attempt.trace_id, attempt.span_id]
    assert delivered.event["traceparent"].split("-")[1:3] == [trace_id, linked_span]


async def test_the_outbox_stores_the_producing_trace_context_with_the_event(
    traced: Running,
) -> None:
    trace_id = secrets.token_hex(16)
    payment_id = await pay_with_traceparent(
        traced.url, traced.creds, traceparent(trace_id, secrets.token_hex(8))
    )
    payments = traced.platform.runtime("payments")
    events = await _outbox_events(payments.db)
    mine = [e for e in events if e.subject == payment_id]
    assert mine
    assert all(e.traceparent is not None for e in mine)
    assert {e.traceparent.split("-")[1] for e in mine if e.traceparent} == {trace_id}


async def _outbox_events(db: Any) -> list[Event]:
    import sqlalchemy as sa

    from paymesh.payments.store import outbox

    async with db.read() as conn:
        rows = (await conn.execute(sa.select(outbox.c.payload))).scalars().all()
    return [Event.from_json(row) for row in rows]


async def test_with_tracing_unset_no_provider_is_built_and_nothing_is_exported(
    embedded_untraced: tuple[Running, OtlpReceiver],
) -> None:
    running, otlp = embedded_untraced
    # The exporter's endpoint is set, but OTEL_TRACES_EXPORTER is not: tracing is off.
    assert os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] == otlp.endpoint
    assert "OTEL_TRACES_EXPORTER" not in os.environ
    header = traceparent(secrets.token_hex(16), secrets.token_hex(8))
    payment_id = await pay_with_traceparent(running.url, running.creds, header)
    for name in SERVICES:
        assert running.platform.runtime(name).tracing is OFF
    assert OFF.provider is None
    assert OFF.tracer is None
    # Nothing became the global provider either.
    assert not hasattr(trace.get_tracer_provider(), "force_flush")
    # No context was recorded with the events, even though the request carried one.
    events = await _outbox_events(running.platform.runtime("payments").db)
    assert [e for e in events if e.subject == payment_id]
    assert all(e.traceparent is None for e in events)
    assert all(b"traceparent" not in e.to_json() for e in events)
    await asyncio.sleep(1.0)  # well past the 200 ms export interval
    assert otlp.requests == 0


@pytest.fixture
async def embedded_untraced(
    tmp_path: Path, ports: dict[str, int], otlp: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Running, OtlpReceiver]]:
    for name, value in otel_env(otlp.endpoint).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("OTEL_TRACES_EXPORTER")
    platform = Platform(embedded_settings(tmp_path / "var", ports))
    await platform.start()
    try:
        creds = await bootstrap(platform)
        yield Running(platform, f"http://127.0.0.1:{ports['gateway']}", creds), otlp
    finally:
        await platform.stop()
