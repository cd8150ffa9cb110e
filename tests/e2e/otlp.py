"""An OTLP/HTTP trace receiver for the tests: a real HTTP server on 127.0.0.1 that
decodes every ExportTraceServiceRequest (protobuf, as OpenTelemetry collectors
take it on ``/v1/traces``) and keeps the spans.

(A plain module, not a test file: the embedded and distributed tests share it.)
It runs in a thread of its own, so processes and the test's event loop alike can
export to it.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

__all__ = ["OtlpReceiver", "ReceivedSpan", "otel_env", "traceparent"]

KIND = {
    PbSpan.SPAN_KIND_INTERNAL: "internal",
    PbSpan.SPAN_KIND_SERVER: "server",
    PbSpan.SPAN_KIND_CLIENT: "client",
    PbSpan.SPAN_KIND_PRODUCER: "producer",
    PbSpan.SPAN_KIND_CONSUMER: "consumer",
}


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as exported: ids in lower-case hex, as in a traceparent."""

    service: str
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_span_id: str
    links: tuple[tuple[str, str], ...]  # (trace id, span id)
    attributes: dict[str, Any]


def _value(v: Any) -> Any:
    which = v.WhichOneof("value")
    return getattr(v, which) if which else None


def _spans(request: ExportTraceServiceRequest) -> list[ReceivedSpan]:
    found = []
    for rs in request.resource_spans:
        resource = {a.key: _value(a.value) for a in rs.resource.attributes}
        for ss in rs.scope_spans:
            for s in ss.spans:
                found.append(
                    ReceivedSpan(
                        service=str(resource.get("service.name", "")),
                        name=s.name,
                        kind=KIND.get(s.kind, "unspecified"),
                        trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(),
                        parent_span_id=s.parent_span_id.hex(),
                        links=tuple((ln.trace_id.hex(), ln.span_id.hex()) for ln in s.links),
                        attributes={a.key: _value(a.value) for a in s.attributes},
                    )
                )
    return found


class OtlpReceiver:
    """Listens on a free loopback port; `endpoint` is OTEL_EXPORTER_OTLP_ENDPOINT."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.requests = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                request = ExportTraceServiceRequest.FromString(body)
                with receiver._lock:
                    receiver.spans.extend(_spans(request))
                    receiver.requests += 1
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def of_trace(self, trace_id: str) -> list[ReceivedSpan]:
        with self._lock:
            return [s for s in self.spans if s.trace_id == trace_id]

    def wait_until(
        self, done: Callable[[list[ReceivedSpan]], bool], timeout_s: float = 60
    ) -> list[ReceivedSpan]:
        """Every span received, once `done` holds of them (AssertionError at the deadline)."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                spans = list(self.spans)
            if done(spans):
                return spans
            if time.monotonic() > deadline:
                summary = sorted({(s.service, s.kind, s.name, s.trace_id) for s in spans})
                raise AssertionError(f"spans received in {timeout_s}s: {summary}")
            time.sleep(0.1)


def otel_env(endpoint: str) -> dict[str, str]:
    """The standard variables that send every service's spans to `endpoint`, quickly."""
    return {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        # Export every 200 ms instead of every 5 s: the tests wait for the spans.
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }


def traceparent(trace_id: str, span_id: str) -> str:
    """A sampled W3C traceparent header value."""
    return f"00-{trace_id}-{span_id}-01"
