"""Tracing's pieces without a platform: the settings that turn it on, the event
envelope's traceparent, the outbox writing it, and what OFF costs."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest
import sqlalchemy as sa
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pydantic import ValidationError

from paymesh.contracts.events import TOPIC_PAYMENTS, Event
from paymesh.platform.db import Database
from paymesh.platform.delivery import parse_event
from paymesh.platform.outbox import append, outbox_table
from paymesh.platform.tracing import OFF, Tracing, current_traceparent, traceparent_context
from paymesh.settings import Settings

EVENT = Event(
    id="evt_1", source="test", type="payment.succeeded", subject="pay_1",
    time="2026-01-01T00:00:00Z", tenant="ten_1", data={"n": 1},
)  # fmt: skip
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def no_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


# --- settings ----------------------------------------------------------------


@pytest.mark.usefixtures("no_otel_env")
def test_tracing_is_off_unless_the_traces_exporter_is_otlp(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert not Settings().tracing
    for off in ("", "none", " NONE "):
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", off)
        assert not Settings().tracing
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    assert Settings().tracing
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert not Settings().tracing


@pytest.mark.usefixtures("no_otel_env")
def test_an_otlp_protocol_other_than_http_protobuf_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    with pytest.raises(ValidationError, match="only http/protobuf"):
        Settings()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")
    assert Settings().tracing
    # Off, the protocol is nobody's concern.
    monkeypatch.delenv("OTEL_TRACES_EXPORTER")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")
    assert not Settings().tracing


@pytest.mark.usefixtures("no_otel_env")
def test_tracing_off_is_the_shared_off_object_with_nothing_to_build() -> None:
    tracing = Tracing.of(Settings(), "payments")
    assert tracing is OFF
    assert tracing.provider is None
    assert tracing.server_interceptors() == []

    async def handler(event: Event) -> None:
        pass

    assert tracing.consumer("t", "g", handler) is handler
    with tracing.span("x") as span:
        assert span is None


@pytest.mark.usefixtures("no_otel_env")
def test_tracing_on_names_the_service_whatever_the_environment_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "everything")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=all,deployment.environment=t")
    risk, gateway = Tracing.of(Settings(), "risk"), Tracing.of(Settings(), "gateway")
    try:
        assert risk.provider is not None
        assert gateway.provider is not None
        assert risk.provider is not gateway.provider
        assert risk.provider.resource.attributes["service.name"] == "risk"
        assert gateway.provider.resource.attributes["service.name"] == "gateway"
        assert risk.provider.resource.attributes["deployment.environment"] == "t"
    finally:
        risk.provider.shutdown() if risk.provider else None
        gateway.provider.shutdown() if gateway.provider else None


# --- the envelope ------------------------------------------------------------


def test_an_event_without_traceparent_has_the_envelope_it_always_had() -> None:
    assert "traceparent" not in json.loads(EVENT.to_json())
    assert Event.from_json(EVENT.to_json()) == EVENT
    assert parse_event(EVENT.to_json()) == EVENT


def test_an_event_carries_its_traceparent_through_json() -> None:
    traced = dataclasses.replace(EVENT, traceparent=TRACEPARENT)
    assert json.loads(traced.to_json())["traceparent"] == TRACEPARENT
    assert Event.from_json(traced.to_json()) == traced
    assert parse_event(traced.to_json()) == traced


@pytest.mark.parametrize("bad", [None, 7, ["00-x"], {"a": 1}, "0" * 300])
def test_a_malformed_traceparent_is_dropped_not_refused(bad: object) -> None:
    raw = json.dumps({**json.loads(EVENT.to_json()), "traceparent": bad}).encode()
    assert parse_event(raw) == EVENT
    assert Event.from_json(raw) == EVENT


def test_a_traceparent_that_is_not_w3c_names_no_context() -> None:
    assert traceparent_context(TRACEPARENT) is not None
    for bad in (None, "", "garbage", "00-" + "0" * 32 + "-" + "0" * 16 + "-01"):
        assert traceparent_context(bad) is None


# --- the outbox --------------------------------------------------------------


async def test_the_outbox_writes_the_active_spans_context_with_the_event(tmp_path) -> None:  # type: ignore[no-untyped-def]
    metadata = sa.MetaData()
    outbox = outbox_table(metadata)
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'o.db'}")
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    try:
        async with db.transaction() as conn:
            await conn.run_sync(metadata.create_all)
        assert current_traceparent() is None
        async with db.transaction() as conn:
            await append(conn, outbox, TOPIC_PAYMENTS, EVENT)
        with provider.get_tracer("t").start_as_current_span("work", kind=SpanKind.SERVER):
            produced = current_traceparent()
            async with db.transaction() as conn:
                await append(conn, outbox, TOPIC_PAYMENTS, dataclasses.replace(EVENT, id="evt_2"))
        async with db.read() as conn:
            payloads = (await conn.execute(sa.select(outbox.c.payload))).scalars().all()
    finally:
        await db.dispose()
        provider.shutdown()
    untraced, traced = (Event.from_json(p) for p in payloads)
    assert untraced.traceparent is None
    [span] = exported.get_finished_spans()
    assert span.context is not None
    ids = f"{span.context.trace_id:032x}-{span.context.span_id:016x}"
    assert produced == f"00-{ids}-{int(span.context.trace_flags):02x}"
    assert traced.traceparent == produced
