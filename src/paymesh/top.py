"""``paymesh top``: a live terminal view of the running platform, from its metrics.

It scrapes one or more Prometheus ``/metrics`` URLs (the embedded platform serves
every service on one; the distributed shape has one per process), sums what they
expose, and shows per service what changed between two scrapes: requests and
server errors per second, p50 and p99 latency (from the histogram buckets'
deltas), payments per second by final status, and the backlogs (sagas open,
outbox rows waiting, consumer lag).

Counters and histograms are summed over the URLs (each process counts its own
work). The saga and outbox gauges are read from a service's database, so every
replica reports the same number: they are combined with max, not sum. Consumer
lag is per process (its own partitions): summed.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

__all__ = ["DEFAULT_URL", "Scrape", "View", "parse", "quantile", "render", "scrape", "view"]

DEFAULT_URL = "http://127.0.0.1:9100/metrics"

HTTP = "paymesh_http_server_request_duration_seconds"
GRPC = "paymesh_grpc_server_handled_seconds"
# Server-side gRPC codes that mean the server failed (as in the alerting rules).
GRPC_ERRORS = frozenset(
    {"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"}
)
HEALTH_METHOD = "/grpc.health.v1.Health/"
PAYMENTS = "paymesh_payments_completed_total"
SAGAS = "paymesh_sagas_open"
OUTBOX = "paymesh_outbox_pending_rows"
LAG = "paymesh_event_consumer_lag"

Labels = tuple[tuple[str, str], ...]


@dataclass
class Scrape:
    """What one round of scrapes saw, summed per service."""

    at: float  # time.monotonic() when the round ended
    requests: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    errors: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    # service -> upper bound -> cumulative count (REST and gRPC server requests)
    buckets: dict[str, dict[float, float]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(float))
    )
    payments: dict[tuple[str, str], float] = field(default_factory=lambda: defaultdict(float))
    sagas: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    outbox: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    lag: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    failed: list[str] = field(default_factory=list)  # URLs that did not answer

    def services(self) -> set[str]:
        return {
            *self.requests,
            *self.sagas,
            *self.outbox,
            *self.lag,
            *(s for s, _ in self.payments),
        }


def _is_error(name: str, labels: Mapping[str, str]) -> bool:
    if name.startswith(HTTP):
        return labels.get("status", "").startswith("5")
    return labels.get("grpc_code", "") in GRPC_ERRORS


def parse(texts: Iterable[str], at: float) -> Scrape:
    """One Scrape from the expositions of every URL of a round."""
    result = Scrape(at)
    # Database-wide gauges: the same value from every replica, so max per series.
    shared: dict[tuple[str, Labels], float] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            if family.name not in (HTTP, GRPC, PAYMENTS.removesuffix("_total"), SAGAS, OUTBOX, LAG):
                continue
            for sample in family.samples:
                labels, value = sample.labels, sample.value
                service = labels.get("service", "")
                if labels.get("grpc_method", "").startswith(HEALTH_METHOD):
                    continue
                if sample.name in (f"{HTTP}_count", f"{GRPC}_count"):
                    result.requests[service] += value
                    if _is_error(sample.name, labels):
                        result.errors[service] += value
                elif sample.name in (f"{HTTP}_bucket", f"{GRPC}_bucket"):
                    result.buckets[service][float(labels["le"])] += value
                elif sample.name == PAYMENTS and labels.get("kind") == "payment":
                    result.payments[(service, labels.get("status", ""))] += value
                elif sample.name == LAG:
                    result.lag[service] += value
                elif sample.name in (SAGAS, OUTBOX):
                    key = (sample.name, tuple(sorted(labels.items())))
                    shared[key] = max(shared.get(key, value), value)
    for (name, series), value in shared.items():
        service = dict(series).get("service", "")
        (result.sagas if name == SAGAS else result.outbox)[service] += value
    return result


def scrape(client: httpx.Client, urls: Iterable[str]) -> Scrape:
    """Fetch every URL once; those that fail are listed, not fatal."""
    texts, failed = [], []
    for url in urls:
        try:
            response = client.get(url)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            failed.append(f"{url}: {exc.__class__.__name__}")
            continue
        texts.append(response.text)
    result = parse(texts, time.monotonic())
    result.failed = failed
    return result


def quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """The q-quantile of cumulative bucket counts, as Prometheus's histogram_quantile
    computes it (linear within a bucket); None without observations."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for upper in bounds:
        count = buckets[upper]
        if count >= rank:
            if math.isinf(upper):
                return lower  # beyond the highest finite bucket: its bound is all we know
            if count == below:
                return upper
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    return lower


def _delta(after: float, before: float) -> float:
    # A counter that went down was reset (the process restarted): count from zero.
    return after - before if after >= before else after


@dataclass(frozen=True)
class Row:
    service: str
    requests_per_s: float
    errors_per_s: float
    p50_s: float | None
    p99_s: float | None
    payments_per_s: dict[str, float]
    sagas_open: float
    outbox_pending: float
    consumer_lag: float


@dataclass(frozen=True)
class View:
    rows: list[Row]
    seconds: float
    failed: list[str]


def view(before: Scrape, after: Scrape) -> View:
    """What changed between two scrapes, per service."""
    seconds = max(after.at - before.at, 1e-9)
    rows = []
    for service in sorted(after.services()):
        if not service:
            continue
        deltas = {
            le: _delta(n, before.buckets.get(service, {}).get(le, 0.0))
            for le, n in after.buckets.get(service, {}).items()
        }
        payments = {
            status: _delta(n, before.payments.get((svc, status), 0.0)) / seconds
            for (svc, status), n in sorted(after.payments.items())
            if svc == service
        }
        rows.append(
            Row(
                service=service,
                requests_per_s=_delta(
                    after.requests.get(service, 0.0), before.requests.get(service, 0.0)
                )
                / seconds,
                errors_per_s=_delta(after.errors.get(service, 0.0), before.errors.get(service, 0.0))
                / seconds,
                p50_s=quantile(0.5, deltas),
                p99_s=quantile(0.99, deltas),
                payments_per_s=payments,
                sagas_open=after.sagas.get(service, 0.0),
                outbox_pending=after.outbox.get(service, 0.0),
                consumer_lag=after.lag.get(service, 0.0),
            )
        )
    return View(rows, seconds, after.failed)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def _num(value: float) -> str:
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"


def render(current: View, urls: Iterable[str]) -> RenderableType:
    """The view as rich tables: one row per service, then payments by final status
    (and the URLs that did not answer)."""
    table = Table(
        title=f"paymesh top: {', '.join(urls)} (over {current.seconds:.1f} s)",
        title_justify="left",
    )
    columns = ("service", "req/s", "p50", "p99", "err/s", "pay/s", "sagas", "outbox", "lag")
    for column in columns:
        table.add_column(column, justify="left" if column == "service" else "right", no_wrap=True)
    by_status = Table(title="payments/s by final status", title_justify="left")
    for column in ("service", "status", "per s"):
        by_status.add_column(column, justify="right" if column == "per s" else "left")
    for row in current.rows:
        table.add_row(
            row.service,
            f"{row.requests_per_s:.1f}",
            _ms(row.p50_s),
            _ms(row.p99_s),
            Text(f"{row.errors_per_s:.1f}", style="red" if row.errors_per_s else ""),
            f"{sum(row.payments_per_s.values()):.1f}" if row.payments_per_s else "-",
            _num(row.sagas_open),
            _num(row.outbox_pending),
            _num(row.consumer_lag),
        )
        for status, rate in row.payments_per_s.items():
            by_status.add_row(row.service, status, f"{rate:.1f}")
    parts: list[RenderableType] = [table]
    if by_status.row_count:
        parts.append(by_status)
    parts.extend(Text(f"unreachable: {f}", style="red") for f in current.failed)
    return Group(*parts)
