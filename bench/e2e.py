"""End-to-end load: payments through the gateway of a platform running as separate processes.

    python bench/e2e.py [--shape embedded|distributed] [--clients 1,16,64] [--seconds 10]
                        [--mix] [--max-payments 50000] [--load-procs N] [--log-level INFO]
    python bench/e2e.py --url http://127.0.0.1:8000 --credentials var/demo-credentials.json
                        [--pids 1234,1235]
    python bench/e2e.py --observability both [--rounds 2]

``--shape embedded`` (the default) starts ``paymesh up`` in a process of its own (SQLite
in a temporary folder, free loopback ports); ``--shape distributed`` starts a process
per service (``paymesh serve <service>``) on fresh PostgreSQL databases (127.0.0.1:5432,
user postgres) and a tansu Kafka broker (bench/shapes.py). Both raise the gateway's
per-client rate limit out of the way and log at --log-level (INFO, production's
default: the access log is part of the cost). ``--url`` drives a running gateway.

For each client count, on the same platform: a closed loop of N clients, each paying
from a payer account of its own to one merchant (automatic capture; with ``--mix`` every
other iteration is a manual payment, its capture and a partial refund), bounded in time
(--seconds) and count (--max-payments); then, at the same client count, the baseline:
the gateway's cheapest authenticated GET (GET /v1/accounts/{id}: one token check, one
gRPC call, one read). The load runs in processes of its own (spawned; --load-procs,
default one per 16 clients, at most 2), never in the platform's event loop.

Per run it prints payments/s, p50/p95/p99 of the payment call, errors by
"operation:status", the payments' statuses, CPU ms per payment (the platform processes'
user+system CPU, their descendants included, during the load window, ÷ payments; and
"drained": until the platform is back to what it spends at rest, less that, which
charges the events consumed behind the load), the same per process, and apart from
those the CPU of PostgreSQL's backends of its databases and of the broker
(distributed: "infra"), the load processes' own CPU, the machine's busy share, the baseline's
req/s and CPU per request, and payments/s ÷ baseline req/s; then the same as one JSON
line. With --url, CPU is counted only for --pids (processes on this machine).

``--observability`` (embedded only): ``off`` (the default) runs with tracing unset;
``on`` with every service's spans exported over OTLP/HTTP (the standard OTEL_*
variables) to a sink in a process of its own (bench/otlp_sink.py), as to a collector,
and the metrics served and scraped every 5 s; ``both`` runs off and on alternately,
``--rounds`` times each, a fresh platform per run, and prints the ratio of their median
throughputs and CPU per payment (no baseline).

It asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from loadgen import Job, Tally, work
from shapes import (
    CPU_SOURCE,
    CpuTable,
    Running,
    distributed,
    embedded,
    free_port,
    machine_busy,
    post_json,
)

# After the load: the platform has drained once it spends no more than at rest plus this
# share of a core (bounded by DRAIN_MAX_S).
IDLE_SHARE = 0.05
DRAIN_MAX_S = 15.0


def prepare(url: str, creds: dict[str, str], payers: int) -> tuple[str, list[str]]:
    """A merchant and `payers` funded customer accounts: their ids."""
    with httpx.Client(base_url=url, timeout=60) as http:
        r = http.post(
            "/v1/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": creds["client_id"],
                "client_secret": creds["client_secret"],
            },
        )
        r.raise_for_status()
        http.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        merchant = post_json(http, "/v1/accounts", {"currency": "USD", "type": "merchant"})["id"]
        ids = []
        for _ in range(payers):
            payer = post_json(http, "/v1/accounts", {"currency": "USD", "type": "customer"})["id"]
            topup = {"account_id": payer, "amount": 10**12, "currency": "USD"}
            post_json(http, "/v1/topups", topup)
            ids.append(payer)
    return str(merchant), ids


# --- one phase: load processes, CPU around them ---------------------------------------


@dataclass
class Phase:
    """What one phase measured: the load processes' tallies, the window, and CPU
    seconds by process group in the window and until the platform went idle."""

    tallies: list[Tally]
    elapsed_s: float
    cpu_s: dict[str, float]
    drained_cpu_s: dict[str, float]
    drain_s: float
    busy_share: float

    def latencies(self, *ops: str) -> list[float]:
        return sorted(x for t in self.tallies for op in ops for x in t.latencies.get(op, ()))

    def count(self, *ops: str) -> int:
        return sum(len(t.latencies.get(op, ())) for t in self.tallies for op in ops)

    def errors(self) -> dict[str, int]:
        return dict(sum((t.errors for t in self.tallies), Counter()))

    def outcomes(self) -> dict[str, int]:
        return dict(sum((t.outcomes for t in self.tallies), Counter()))

    def load_cpu_s(self) -> float:
        return sum(t.cpu_s for t in self.tallies)

    def requests(self) -> int:
        return sum(t.requests() for t in self.tallies)


def _platform_cpu(cpu: dict[str, float]) -> float:
    return sum(v for k, v in cpu.items() if not k.startswith("infra:"))


def idle_cores(running: Running, seconds: float = 3.0) -> dict[str, float]:
    """What each process group spends at rest (pollers, consumers), in cores."""
    before = CpuTable.now()
    time.sleep(seconds)
    after = CpuTable.now()
    groups = running.groups(after)
    return {
        k: after.since(before, pids & before.procs.keys()) / seconds for k, pids in groups.items()
    }


def _drain(running: Running, idle: dict[str, float]) -> tuple[CpuTable, float]:
    """Wait (bounded) until the platform spends no more than at rest (+ IDLE_SHARE of a
    core); the table then, and how long it took."""
    at_rest = _platform_cpu(idle) + IDLE_SHARE
    began = last_at = time.perf_counter()
    last = CpuTable.now()
    while time.perf_counter() - began < DRAIN_MAX_S:
        time.sleep(0.5)
        now, at = CpuTable.now(), time.perf_counter()
        groups = running.groups(now)
        spent = _platform_cpu({k: now.since(last, pids) for k, pids in groups.items()})
        step, last, last_at = at - last_at, now, at
        if spent <= at_rest * step:
            break
    return last, last_at - began


def run_phase(running: Running, jobs: list[Job], idle: dict[str, float]) -> Phase:
    """Start a load process per job, let them go at once, and measure around them."""
    ctx = multiprocessing.get_context("spawn")
    ready, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=work, args=(job, ready, go, out), daemon=True) for job in jobs]
    for proc in procs:
        proc.start()
    try:
        for _ in jobs:
            ready.get(timeout=120)
        before, busy0, started = CpuTable.now(), machine_busy(), time.perf_counter()
        go.set()
        tallies = [out.get(timeout=max(j.seconds for j in jobs) + 180) for _ in jobs]
        elapsed = time.perf_counter() - started
        after, busy1 = CpuTable.now(), machine_busy()
        drained, drain_s = _drain(running, idle)
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    groups = running.groups(drained)
    return Phase(
        tallies=tallies,
        elapsed_s=max(elapsed, max(t.elapsed_s for t in tallies)),
        cpu_s={k: after.since(before, pids & after.procs.keys()) for k, pids in groups.items()},
        # The drain charges what the load left behind, not what the platform spends at rest.
        drained_cpu_s={
            k: after.since(before, pids & after.procs.keys())
            + max(0.0, drained.since(after, pids) - idle.get(k, 0.0) * drain_s)
            for k, pids in groups.items()
        },
        drain_s=drain_s,
        busy_share=(busy1[0] - busy0[0]) / max(1.0, busy1[1] - busy0[1]),
    )


def _split(payers: list[str], procs: int) -> list[list[str]]:
    return [payers[i::procs] for i in range(procs) if payers[i::procs]]


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return round(values[min(len(values) - 1, int(q * len(values)))] * 1000, 1)


def _ms_per(cpu_s: float | None, n: int) -> float | None:
    return round(cpu_s * 1000 / n, 2) if cpu_s is not None and n else None


# --- one run: payments, then the baseline, at one client count -------------------------


def run_once(
    running: Running,
    args: argparse.Namespace,
    clients: int,
    accounts: tuple[str, list[str]],
    idle: dict[str, float],
) -> dict[str, Any]:
    """Payments then the baseline at `clients` clients; the measurements as a dict."""
    merchant, payers = accounts
    procs = args.load_procs or min(2, max(1, clients // 16))
    groups = _split(payers[:clients], procs)

    def jobs(kind: str, seconds: float) -> list[Job]:
        return [
            Job(
                url=running.url,
                client_id=running.creds["client_id"],
                client_secret=running.creds["client_secret"],
                kind=kind,
                payers=group,
                merchant=merchant,
                seconds=seconds,
                max_ops=max(1, args.max_payments // len(groups)),
                mix=args.mix,
            )
            for group in groups
        ]

    pay = run_phase(running, jobs("payments", args.seconds), idle)
    payments = pay.count("payment", "payment_manual")
    latencies = pay.latencies("payment")
    counted = bool(running.pids)
    cpu = _platform_cpu(pay.cpu_s) if counted else None
    result: dict[str, Any] = {
        "shape": args.shape if not args.url else "url",
        "clients": clients,
        "mix": args.mix,
        "load_procs": len(groups),
        "seconds": round(pay.elapsed_s, 2),
        "payments": payments,
        "payments_per_s": round(payments / pay.elapsed_s, 1),
        "requests_per_s": round(pay.count(*_OPS) / pay.elapsed_s, 1),
        "p50_ms": _pct(latencies, 0.50),
        "p95_ms": _pct(latencies, 0.95),
        "p99_ms": _pct(latencies, 0.99),
        "errors": pay.errors(),
        "statuses": pay.outcomes(),
        "cpu_ms_per_payment": _ms_per(cpu, payments),
        "cpu_ms_per_payment_drained": (
            _ms_per(_platform_cpu(pay.drained_cpu_s), payments) if counted else None
        ),
        "infra_cpu_ms_per_payment_drained": _ms_per(
            sum(v for k, v in pay.drained_cpu_s.items() if k.startswith("infra:")), payments
        ),
        "drain_s": round(pay.drain_s, 1),
        "cpu_ms_per_payment_by_process": {
            k: _ms_per(v, payments) for k, v in pay.drained_cpu_s.items()
        },
        "load_cpu_ms_per_request": _ms_per(pay.load_cpu_s(), pay.requests()),
        "machine_busy_pct": round(pay.busy_share * 100, 1),
    }
    if args.mix:
        result["ops_p50_p99_ms"] = {
            op: [_pct(pay.latencies(op), 0.5), _pct(pay.latencies(op), 0.99)] for op in _OPS
        }
    if args.baseline_seconds > 0:
        base = run_phase(running, jobs("baseline", args.baseline_seconds), idle)
        gets = base.count("get")
        base_latencies = base.latencies("get")
        per_s = round(gets / base.elapsed_s, 1)
        result["baseline"] = {
            "path": "GET /v1/accounts/{id}",
            "req_per_s": per_s,
            "p50_ms": _pct(base_latencies, 0.50),
            "p99_ms": _pct(base_latencies, 0.99),
            "errors": base.errors(),
            "cpu_ms_per_request": (
                _ms_per(_platform_cpu(base.cpu_s), gets) if running.pids else None
            ),
            "load_cpu_ms_per_request": _ms_per(base.load_cpu_s(), base.requests()),
            "machine_busy_pct": round(base.busy_share * 100, 1),
        }
        ratio = round(result["payments_per_s"] / per_s, 3) if per_s else None
        result["payments_per_baseline"] = ratio
    return result


_OPS = ("payment", "payment_manual", "capture", "refund")


def describe(r: dict[str, Any]) -> str:
    """One run as a few human lines."""
    lines = [
        f"{r['shape']:11} clients={r['clients']:<3} {r['payments_per_s']:>7} payments/s"
        f"  p50 {r['p50_ms']} p95 {r['p95_ms']} p99 {r['p99_ms']} ms"
        f"  cpu {r['cpu_ms_per_payment']} ms/payment (drained {r['cpu_ms_per_payment_drained']})"
        f"  errors {r['errors'] or 0}  statuses {r['statuses']}",
        f"{'':11} by process (ms/payment, drained): {r['cpu_ms_per_payment_by_process']}"
        f"  load {r['load_cpu_ms_per_request']} ms/request  machine busy {r['machine_busy_pct']}%",
    ]
    if r.get("ops_p50_p99_ms"):
        lines.append(f"{'':11} mixed flows, p50/p99 ms by call: {r['ops_p50_p99_ms']}")
    b = r.get("baseline")
    if b:
        lines.append(
            f"{'':11} baseline {b['path']}: {b['req_per_s']} req/s  p50 {b['p50_ms']} p99"
            f" {b['p99_ms']} ms  cpu {b['cpu_ms_per_request']} ms/request  errors"
            f" {b['errors'] or 0}  -> payments/s ÷ baseline = {r['payments_per_baseline']}"
        )
    return "\n".join(lines)


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def _emit(result: dict[str, Any], context: dict[str, Any]) -> None:
    print(describe(result))
    print(json.dumps({**context, **result}, separators=(",", ":")))
    sys.stdout.flush()


@contextlib.contextmanager
def _platform(args: argparse.Namespace) -> Iterator[Running]:
    if args.url:
        creds = json.loads(args.credentials.read_text())
        pids = {str(p): p for p in args.pids}
        yield Running(args.url, creds, Path("."), pids)
    elif args.shape == "distributed":
        with distributed(log_level=args.log_level) as running:
            yield running
    else:
        with embedded(log_level=args.log_level) as running:
            yield running


def run_all(args: argparse.Namespace) -> None:
    """Every client count on one platform; each run printed as it ends."""
    context: dict[str, Any] = {
        "commit": _commit(),
        "nproc": os.cpu_count(),
        "log_level": args.log_level,
        "cpu_source": CPU_SOURCE,
    }
    print(
        f"e2e payments through the gateway: shape {args.shape if not args.url else args.url},"
        f" clients {args.clients}, {args.seconds} s per run (baseline {args.baseline_seconds} s),"
        f" mix {args.mix}, commit {context['commit']}, {context['nproc']} cores,"
        f" log level {args.log_level}, cpu from {CPU_SOURCE}"
    )
    sys.stdout.flush()
    with _platform(args) as running:
        accounts = prepare(running.url, running.creds, max(args.clients))
        idle = idle_cores(running)
        context["at_rest_cores"] = {k: round(v, 3) for k, v in idle.items()}
        print(f"at rest (cores): {context['at_rest_cores']}")
        for clients in args.clients:
            _emit(run_once(running, args, clients, accounts, idle), context)


# --- observability on and off -----------------------------------------------------------


def _observability_env(on: bool, sink: str) -> dict[str, str | None]:
    """The environment of a run with observability on (exporting to `sink`) or off."""
    if not on:
        return {"OTEL_TRACES_EXPORTER": None}
    return {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": sink,
    }


def _scrape_every(url: str, interval_s: float, stop: threading.Event) -> None:
    """Scrape `url` as Prometheus would, until `stop` is set."""
    while not stop.wait(interval_s):
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(url, timeout=10)


def _observed_run(args: argparse.Namespace, on: bool, sink: str) -> list[dict[str, Any]]:
    """One fresh embedded platform, observability `on` or off; a run per client count."""
    results = []
    env = _observability_env(on, sink)
    with embedded(log_level=args.log_level, env=env, metrics=on) as running:
        accounts = prepare(running.url, running.creds, max(args.clients))
        stop = threading.Event()
        if on:
            url = f"http://{running.admin}/metrics"
            threading.Thread(target=_scrape_every, args=(url, 5.0, stop), daemon=True).start()
        try:
            idle = idle_cores(running)
            for clients in args.clients:
                results.append(run_once(running, args, clients, accounts, idle))
        finally:
            stop.set()
    return results


def observability(args: argparse.Namespace) -> None:
    """Runs with observability off and/or on, alternately; their results and the ratio."""
    modes = ["off", "on"] if args.observability == "both" else [args.observability]
    rounds = args.rounds if args.observability == "both" else 1
    args.baseline_seconds = 0
    port = free_port()
    sink = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("otlp_sink.py")), "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    context = {"commit": _commit(), "nproc": os.cpu_count(), "log_level": args.log_level}
    try:
        assert sink.stdout is not None
        sink.stdout.readline()  # "ready"
        for _ in range(rounds):
            for mode in modes:
                for r in _observed_run(args, mode == "on", f"http://127.0.0.1:{port}"):
                    r["observability"] = mode
                    _emit(r, context)
                    runs[mode].append(r)
    finally:
        sink.terminate()
        exported, _ = sink.communicate(timeout=30)
    summary: dict[str, Any] = {}
    for clients in args.clients:
        for mode, results in runs.items():
            mine = [r for r in results if r["clients"] == clients]
            summary[f"{mode}_per_s@{clients}"] = statistics.median(
                r["payments_per_s"] for r in mine
            )
            summary[f"{mode}_cpu_ms@{clients}"] = statistics.median(
                r["cpu_ms_per_payment"] or 0 for r in mine
            )
        if len(modes) == 2 and summary[f"off_per_s@{clients}"]:
            on, off = summary[f"on_per_s@{clients}"], summary[f"off_per_s@{clients}"]
            summary[f"on/off throughput@{clients}"] = round(on / off, 3)
            on, off = summary[f"on_cpu_ms@{clients}"], summary[f"off_cpu_ms@{clients}"]
            summary[f"on/off cpu@{clients}"] = round(on / off, 3) if off else None
    if "on" in runs:
        summary["sink"] = exported.strip().splitlines()[-1] if exported.strip() else "?"
    print("observability off/on, embedded:")
    for key, value in summary.items():
        print(f"  {key:24} {value}")
    print(json.dumps({**context, "observability_summary": summary}, separators=(",", ":")))


def _counts(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=["embedded", "distributed"], default="embedded")
    parser.add_argument("--url", help="a running gateway instead of starting a platform")
    parser.add_argument("--credentials", type=Path, default=Path("var/demo-credentials.json"))
    parser.add_argument("--pids", type=_counts, default=[], help="with --url: whose CPU counts")
    parser.add_argument("--clients", type=_counts, default=[1, 16, 64], help="e.g. 1,16,64")
    parser.add_argument("--seconds", type=float, default=10.0, help="per run")
    parser.add_argument("--baseline-seconds", type=float, help="default: --seconds; 0: none")
    parser.add_argument("--max-payments", type=int, default=50_000, help="per run")
    parser.add_argument("--mix", action="store_true", help="manual capture + refund flows too")
    parser.add_argument("--load-procs", type=int, default=0, help="default: 1 per 16 clients, ≤2")
    parser.add_argument("--log-level", default="INFO", help="the platform's (production: INFO)")
    parser.add_argument(
        "--observability",
        choices=["off", "on", "both"],
        default="off",
        help="metrics served and scraped, and tracing exporting to a local sink: off, on,"
        " or both compared in the same run (embedded only)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="runs per mode with 'both'")
    args = parser.parse_args()
    if args.baseline_seconds is None:
        args.baseline_seconds = args.seconds
    if args.observability != "off" and (args.url or args.shape != "embedded"):
        parser.error("--observability needs the embedded shape (no --url)")
    if args.observability != "off":
        observability(args)
    else:
        run_all(args)


if __name__ == "__main__":
    main()
