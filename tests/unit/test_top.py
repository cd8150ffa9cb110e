"""`paymesh top` against a real HTTP server serving real prometheus_client
expositions with known values: two scrapes, and the rates and percentiles
between them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from typer.testing import CliRunner

from paymesh import top
from paymesh.cli import app
from paymesh.platform.metrics import LATENCY_BUCKETS

HEALTH = "/grpc.health.v1.Health/Check"
CREATE = "/paymesh.payments.v1.Payments/CreatePayment"


class Platform:
    """The catalogue's metrics on a registry of their own, fed known values."""

    def __init__(self) -> None:
        reg = self.registry = CollectorRegistry()
        self.http = Histogram(
            "paymesh_http_server_request_duration_seconds", "",
            ["service", "method", "route", "status"], buckets=LATENCY_BUCKETS, registry=reg,
        )  # fmt: skip
        self.grpc = Histogram(
            "paymesh_grpc_server_handled_seconds", "", ["service", "grpc_method", "grpc_code"],
            buckets=LATENCY_BUCKETS, registry=reg,
        )  # fmt: skip
        self.completed = Counter(
            "paymesh_payments_completed_total", "", ["service", "kind", "status", "failure_code"],
            registry=reg,
        )  # fmt: skip
        self.sagas = Gauge("paymesh_sagas_open", "", ["service", "flow", "step"], registry=reg)
        self.outbox = Gauge("paymesh_outbox_pending_rows", "", ["service"], registry=reg)
        self.lag = Gauge(
            "paymesh_event_consumer_lag", "", ["service", "group", "topic"], registry=reg
        )

    def rest(self, n: int, seconds: float, status: str = "201") -> None:
        child = self.http.labels("gateway", "POST", "/v1/payments", status)
        for _ in range(n):
            child.observe(seconds)

    def rpc(self, n: int, code: str = "OK", method: str = CREATE) -> None:
        child = self.grpc.labels("payments", method, code)
        for _ in range(n):
            child.observe(0.003)

    def exposition(self) -> str:
        return generate_latest(self.registry).decode()


def two_scrapes() -> tuple[str, str]:
    """Before: 50 REST requests, 10 gRPC calls, 5 payments. Between the scrapes: 200
    REST requests (20 of them 503s; 197 at 3 ms, 3 at 400 ms), 50 gRPC calls (10
    UNAVAILABLE), 8 payments succeeded and 2 failed; health checks never count."""
    p = Platform()
    p.rest(50, 0.003)
    p.rpc(10)
    p.rpc(1000, method=HEALTH)
    p.completed.labels("payments", "payment", "succeeded", "").inc(5)
    p.completed.labels("payments", "refund", "succeeded", "").inc(100)  # not a payment
    p.sagas.labels("payments", "payment", "authorize").set(1)
    first = p.exposition()
    p.rest(177, 0.003)
    p.rest(20, 0.003, status="503")
    p.rest(3, 0.4)
    p.rpc(40)
    p.rpc(10, code="UNAVAILABLE")
    p.rpc(1000, code="UNAVAILABLE", method=HEALTH)
    p.completed.labels("payments", "payment", "succeeded", "").inc(8)
    p.completed.labels("payments", "payment", "failed", "insufficient_funds").inc(2)
    p.sagas.labels("payments", "payment", "authorize").set(4)
    p.outbox.labels("payments").set(7)
    p.lag.labels("risk", "risk", "paymesh.payments.v1").set(12)
    return first, p.exposition()


def test_rates_and_percentiles_come_from_the_deltas_between_two_scrapes() -> None:
    first, second = two_scrapes()
    result = top.view(top.parse([first], at=10.0), top.parse([second], at=12.0))
    assert result.seconds == 2.0
    rows = {r.service: r for r in result.rows}
    gateway, payments = rows["gateway"], rows["payments"]
    assert gateway.requests_per_s == 100.0  # 200 in 2 s
    assert gateway.errors_per_s == 10.0
    # 197 of 200 in (2.5 ms, 5 ms], 3 in (250 ms, 500 ms]: linear within a bucket.
    assert gateway.p50_s == pytest.approx(0.0025 + 0.0025 * 100 / 197)
    assert gateway.p99_s == pytest.approx(0.25 + 0.25 * 1 / 3)
    assert payments.requests_per_s == 25.0  # health checks excluded
    assert payments.errors_per_s == 5.0
    assert payments.payments_per_s == {"failed": 1.0, "succeeded": 4.0}
    assert (payments.sagas_open, payments.outbox_pending) == (4, 7)
    assert rows["risk"].consumer_lag == 12


def test_several_urls_sum_their_work_and_share_database_gauges() -> None:
    first, second = two_scrapes()
    result = top.view(top.parse([first, first], at=0.0), top.parse([second, second], at=1.0))
    payments = {r.service: r for r in result.rows}["payments"]
    assert payments.requests_per_s == 100.0  # two processes, 50 each
    assert payments.payments_per_s == {"failed": 4.0, "succeeded": 16.0}
    # Every replica reads the same database: 4 sagas open, not 8.
    assert payments.sagas_open == 4
    assert {r.service: r for r in result.rows}["risk"].consumer_lag == 24


def test_a_counter_reset_between_scrapes_counts_from_zero() -> None:
    first, second = two_scrapes()
    result = top.view(top.parse([second], at=0.0), top.parse([first], at=1.0))
    assert {r.service: r for r in result.rows}["gateway"].requests_per_s == 50.0


def test_quantile_without_observations_is_unknown() -> None:
    assert top.quantile(0.5, {}) is None
    assert top.quantile(0.5, {0.1: 0.0, float("inf"): 0.0}) is None
    # Past the highest finite bucket: its bound is the answer, as Prometheus does.
    assert top.quantile(0.99, {1.0: 0.0, float("inf"): 5.0}) == 1.0


class Pages:
    """Serves the given expositions in turn (the last one from then on)."""

    def __init__(self, *pages: str) -> None:
        self.pages = list(pages)
        self.served = 0

    def next(self) -> bytes:
        page = self.pages[min(self.served, len(self.pages) - 1)]
        self.served += 1
        return page.encode()


@pytest.fixture
def metrics_url() -> Iterator[tuple[str, Pages]]:
    pages = Pages(*two_scrapes())

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.next() if self.path == "/metrics" else b""
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/metrics", pages
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_paymesh_top_once_prints_each_services_rates_and_percentiles(
    metrics_url: tuple[str, Pages],
) -> None:
    url, pages = metrics_url
    result = CliRunner().invoke(app, ["top", "--url", url, "--interval", "1", "--once"])
    assert result.exit_code == 0, result.output
    assert pages.served == 2
    rows = [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in result.output.splitlines()
        if line.startswith("│")
    ]
    services = {r[0]: r for r in rows if len(r) == 9}
    gateway, payments, risk = services["gateway"], services["payments"], services["risk"]
    # 200 requests over the time between the scrapes (1 s asked; a busy machine adds some).
    assert 200 / 3 <= float(gateway[1]) <= 200.0
    assert gateway[2:4] == ["3.8 ms", "333.3 ms"]
    assert 20 / 3 <= float(gateway[4]) <= 20.0
    assert 10 / 3 <= float(payments[5]) <= 10.0
    assert payments[6:9] == ["4", "7", "0"]
    assert risk[8] == "12"
    statuses = {r[1]: float(r[2]) for r in rows if len(r) == 3}
    assert set(statuses) == {"failed", "succeeded"}
    assert 8 / 3 <= statuses["succeeded"] <= 8.0
    assert 2 / 3 <= statuses["failed"] <= 2.0


def test_paymesh_top_says_which_url_does_not_answer() -> None:
    result = CliRunner().invoke(app, ["top", "--url", "http://127.0.0.1:9/metrics", "--once"])
    assert result.exit_code == 1
    assert "unreachable: http://127.0.0.1:9/metrics" in result.output
