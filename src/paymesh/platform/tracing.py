"""OpenTelemetry tracing of one service: its TracerProvider and what plugs it in.

Tracing is configured by the standard variables (see :class:`~paymesh.platform.
settings.PlatformSettings` and docs/operations.md, "Tracing"). Off (the default),
:meth:`Tracing.of` returns :data:`OFF`, which builds no provider, imports no SDK,
adds no interceptor or middleware and wraps no handler: a request allocates no
span of any kind. On, every service gets a TracerProvider of its own, whose
resource says ``service.name=<service>``, with a BatchSpanProcessor exporting
over OTLP/HTTP; it is passed explicitly to that service's instrumentations and
never made the global provider, so the five services of ``paymesh up`` (one
process) still export under five names.

What is traced:

- the gateway's HTTP requests (FastAPI instrumentation; an incoming W3C
  ``traceparent`` header makes its server span a child of the caller's span);
- every gRPC call a service serves (the aio server interceptor of
  opentelemetry-instrumentation-grpc; health checks and reflection are left
  out). The caller's context travels in the call's metadata, put there by
  :func:`~paymesh.platform.rpc.caller_options` rather than by the package's
  client interceptors: any client interceptor on a grpc.aio channel turns
  every call into an intercepted call (more tasks and callbacks per call),
  which on our payment path cost more CPU than all the spans together. A
  callee's server span is thus the child of the caller's current span;
- the Kafka (or in-process) hop: :func:`current_traceparent` is stored with each
  event the outbox writes (the CloudEvents ``traceparent`` attribute, also sent
  as a Kafka header), and :meth:`Tracing.consumer` runs a handler in a CONSUMER
  span that is a CHILD of that context (the trace of a payment continues into
  its consumers);
- webhook delivery attempts: :meth:`Tracing.span` makes one CLIENT span per
  attempt, LINKED to the event's context rather than a child of it (an attempt
  may come days after the event, and retries are traces of their own).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from paymesh.contracts.events import Event
from paymesh.platform.bus import Handler
from paymesh.platform.logging import get_logger
from paymesh.platform.settings import PlatformSettings

if TYPE_CHECKING:
    import grpc
    from fastapi import FastAPI
    from opentelemetry.sdk.trace import TracerProvider

__all__ = ["OFF", "TRACEPARENT", "Tracing", "current_traceparent", "traceparent_context"]

log = get_logger(__name__)

# The W3C header, gRPC metadata key, Kafka record header and CloudEvents attribute.
TRACEPARENT = "traceparent"

_W3C = TraceContextTextMapPropagator()


def current_traceparent() -> str | None:
    """The W3C traceparent of the span active now; None when there is none (tracing off)."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def traceparent_context(traceparent: str | None) -> Context | None:
    """The context a traceparent names; None when absent or malformed."""
    if not traceparent:
        return None
    ctx = _W3C.extract({TRACEPARENT: traceparent})
    if not trace.get_current_span(ctx).get_span_context().is_valid:
        return None
    return ctx


def _link(traceparent: str | None) -> list[Link]:
    ctx = traceparent_context(traceparent)
    if ctx is None:
        return []
    return [Link(trace.get_current_span(ctx).get_span_context())]


def _not_health_or_reflection() -> Any:
    from opentelemetry.instrumentation.grpc import filters

    return filters.negate(
        filters.any_of(
            filters.service_prefix("grpc.health."), filters.service_prefix("grpc.reflection.")
        )
    )


def _provider(service: str) -> TracerProvider:
    """A provider exporting `service`'s spans over OTLP/HTTP, in batches.

    The exporter reads OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, _HEADERS, _TIMEOUT...,
    the provider OTEL_TRACES_SAMPLER(_ARG) and the processor OTEL_BSP_*.
    """
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # service.name is ours even when OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES say
    # otherwise: the embedded platform runs five services under one environment.
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: service}), shutdown_on_exit=False
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


class Tracing:
    """One service's tracing: a provider and its tracer, or nothing at all (:data:`OFF`)."""

    def __init__(self, service: str, provider: TracerProvider | None) -> None:
        self.service = service
        self.provider = provider
        self.tracer: Tracer | None = None
        self._stopped = False
        if provider is not None:
            self.tracer = provider.get_tracer("paymesh")

    @classmethod
    def of(cls, settings: PlatformSettings, service: str) -> Tracing:
        """`service`'s tracing as `settings` configure it: :data:`OFF`, or a new provider."""
        if not settings.tracing:
            return OFF
        log.info("tracing_enabled", service=service, exporter="otlp")
        return cls(service, _provider(service))

    @property
    def enabled(self) -> bool:
        """Whether spans are made and exported."""
        return self.tracer is not None

    def server_interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        """The gRPC server interceptors that trace calls (none when off)."""
        if self.provider is None:
            return []
        from opentelemetry.instrumentation.grpc import aio_server_interceptor

        interceptor: grpc.aio.ServerInterceptor = aio_server_interceptor(  # type: ignore[no-untyped-call]
            tracer_provider=self.provider, filter_=_not_health_or_reflection()
        )
        return [interceptor]

    def instrument_app(self, app: FastAPI) -> None:
        """Trace `app`'s requests (a server span per request, named by route template)."""
        if self.provider is None:
            return
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
        from opentelemetry.metrics import NoOpMeterProvider

        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=self.provider,
            # Metrics are prometheus-client's (platform/metrics.py), not OTel's.
            meter_provider=NoOpMeterProvider(),
            # One span per request, not one more per ASGI message.
            exclude_spans=["receive", "send"],
        )

    def consumer(self, topic: str, group: str, handler: Handler) -> Handler:
        """`handler` run in a CONSUMER span, child of the event's ``traceparent`` (a root
        span when it has none); `handler` itself when tracing is off."""
        tracer = self.tracer
        if tracer is None:
            return handler
        name = f"process {topic}"

        async def traced(event: Event) -> None:
            with tracer.start_as_current_span(
                name,
                context=traceparent_context(event.traceparent),
                kind=SpanKind.CONSUMER,
                attributes={
                    "messaging.operation.type": "process",
                    "messaging.destination.name": topic,
                    "messaging.consumer.group.name": group,
                    "messaging.message.id": event.id,
                    "cloudevents.event_type": event.type,
                },
            ):
                await handler(event)

        return traced

    @contextlib.contextmanager
    def span(
        self,
        name: str,
        *,
        kind: SpanKind = SpanKind.INTERNAL,
        linked_to: str | None = None,
        attributes: Mapping[str, str | int] | None = None,
    ) -> Iterator[Span | None]:
        """A span of this service's, current inside the block, LINKED to the context
        `linked_to` names (a traceparent); yields None when tracing is off."""
        if self.tracer is None:
            yield None
            return
        with self.tracer.start_as_current_span(
            name, kind=kind, links=_link(linked_to), attributes=attributes
        ) as span:
            yield span

    @staticmethod
    def inject(headers: dict[str, str]) -> None:
        """Put the active span's ``traceparent`` (and ``tracestate``) into `headers`."""
        _W3C.inject(headers)

    async def shutdown(self) -> None:
        """Export what is buffered, then stop the provider (blocking work, off the loop)."""
        if self.provider is not None and not self._stopped:
            self._stopped = True
            await asyncio.to_thread(self.provider.shutdown)


# Tracing off: shared by every service; nothing to build, nothing to stop.
OFF = Tracing("", None)
