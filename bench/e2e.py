"""End-to-end load: automatic-capture payments through the gateway.

Bounded in time and count. Without --url it starts its own embedded platform
(SQLite in a temporary folder, free loopback ports) and stops it afterwards.

    python bench/e2e.py [--clients 16] [--seconds 10] [--max-payments 50000]
    python bench/e2e.py --observability both [--rounds 2]
    python bench/e2e.py --url http://127.0.0.1:8000 --credentials var/demo-credentials.json

Prints payments/s and p50/p95/p99 latency; asserts nothing about speed.

``--observability`` (embedded only): ``off`` (the default) runs with tracing unset;
``on`` with every service's spans exported over OTLP/HTTP (the standard OTEL_*
variables) to a sink in a process of its own (bench/otlp_sink.py), as to a
collector; ``both`` runs off and on alternately, ``--rounds`` times each, a fresh
platform per run, and prints the ratio of their median throughputs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _token(http: httpx.AsyncClient, creds: dict[str, str]) -> str:
    r = await http.post(
        "/v1/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": creds["client_id"],
            "client_secret": creds["client_secret"],
        },
    )
    r.raise_for_status()
    return str(r.json()["access_token"])


async def _post(http: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = await http.post(path, json=body, headers={"Idempotency-Key": str(uuid.uuid4())})
    if r.status_code not in (200, 201):
        raise RuntimeError(f"{path}: {r.status_code} {r.text}")
    result: dict[str, Any] = r.json()
    return result


async def run_load(
    url: str, creds: dict[str, str], clients: int, seconds: float, max_payments: int
) -> dict[str, Any]:
    """Drive the load and return the measurements."""
    limits = httpx.Limits(max_connections=clients * 2, max_keepalive_connections=clients * 2)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        http.headers["Authorization"] = f"Bearer {await _token(http, creds)}"
        merchant = await _post(http, "/v1/accounts", {"currency": "USD", "type": "merchant"})
        payers = []
        for _ in range(clients):
            payer = await _post(http, "/v1/accounts", {"currency": "USD", "type": "customer"})
            await _post(
                http,
                "/v1/topups",
                {"account_id": payer["id"], "amount": 10**12, "currency": "USD"},
            )
            payers.append(payer["id"])

        latencies: list[float] = []
        statuses: dict[str, int] = {}
        errors = 0
        deadline = time.perf_counter() + seconds
        issued = 0

        async def client(payer: str) -> None:
            nonlocal errors, issued
            while time.perf_counter() < deadline and issued < max_payments:
                issued += 1
                body = {
                    "payer_account_id": payer,
                    "payee_account_id": merchant["id"],
                    "amount": 100,
                    "currency": "USD",
                    "capture_method": "automatic",
                }
                t0 = time.perf_counter()
                try:
                    p = await _post(http, "/v1/payments", body)
                except (RuntimeError, httpx.HTTPError):
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - t0)
                statuses[p["status"]] = statuses.get(p["status"], 0) + 1

        started, cpu_started = time.perf_counter(), time.process_time()
        await asyncio.gather(*(client(p) for p in payers))
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started

    latencies.sort()

    def pct(q: float) -> float:
        if not latencies:
            return float("nan")
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

    return {
        "clients": clients,
        "seconds": round(elapsed, 2),
        "payments": len(latencies),
        "errors": errors,
        "statuses": statuses,
        "payments_per_s": round(len(latencies) / elapsed, 1) if elapsed else 0.0,
        "p50_ms": round(pct(0.50), 1),
        "p95_ms": round(pct(0.95), 1),
        "p99_ms": round(pct(0.99), 1),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 1) if latencies else None,
        # This process's CPU (every thread) per payment: the platform's and the load's when
        # embedded, the load's alone with --url. Other processes' load does not count.
        "cpu_ms_per_payment": round(cpu * 1000 / len(latencies), 2) if latencies else None,
    }


def _observability_env(on: bool, sink: str) -> dict[str, str | None]:
    """The environment of a run with observability on (exporting to `sink`) or off."""
    if not on:
        return {"OTEL_TRACES_EXPORTER": None}
    return {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": sink,
    }


async def _embedded_with(
    args: argparse.Namespace, env: dict[str, str | None], *, metrics: bool = True
) -> dict[str, Any]:
    """:func:`_with_embedded` with `env` set for the platform (None: unset), then restored."""
    saved = {name: os.environ.get(name) for name in env}
    try:
        for name, value in env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        return await _with_embedded(args, metrics=metrics)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _observability(args: argparse.Namespace) -> dict[str, Any]:
    """Runs with observability off and/or on, alternately; their results and the ratio."""
    modes = ["off", "on"] if args.observability == "both" else [args.observability]
    rounds = args.rounds if args.observability == "both" else 1
    port = _free_port()
    sink = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("otlp_sink.py")), "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sink.stdout is not None
        sink.stdout.readline()  # "ready"
        runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
        for _ in range(rounds):
            for mode in modes:
                env = _observability_env(mode == "on", f"http://127.0.0.1:{port}")
                runs[mode].append(asyncio.run(_embedded_with(args, env, metrics=mode == "on")))
    finally:
        sink.terminate()
        exported, _ = sink.communicate(timeout=30)
    result: dict[str, Any] = {}
    for mode, results in runs.items():
        for n, r in enumerate(results, 1):
            result[f"{mode}#{n}"] = (
                f"{r['payments_per_s']}/s p50 {r['p50_ms']} ms p99 {r['p99_ms']} ms"
                f" cpu {r['cpu_ms_per_payment']} ms/payment errors {r['errors']}"
            )
        result[f"{mode}_per_s"] = statistics.median(r["payments_per_s"] for r in results)
        result[f"{mode}_cpu_ms"] = statistics.median(r["cpu_ms_per_payment"] for r in results)
    if len(modes) == 2 and result["off_per_s"]:
        result["on/off throughput"] = round(result["on_per_s"] / result["off_per_s"], 3)
        result["on/off cpu"] = round(result["on_cpu_ms"] / result["off_cpu_ms"], 3)
    if "on" in runs:
        result["sink"] = exported.strip().splitlines()[-1] if exported.strip() else "?"
    return result


async def _scrape_every(url: str, interval_s: float) -> None:
    """Scrape `url` as Prometheus would, until cancelled."""
    async with httpx.AsyncClient(timeout=10) as http:
        while True:
            await asyncio.sleep(interval_s)
            await http.get(url)


async def _with_embedded(args: argparse.Namespace, *, metrics: bool = True) -> dict[str, Any]:
    """One run on an embedded platform; with `metrics`, its admin listener serves them and is
    scraped every 5 s during the run (without, no listener: the counters still count)."""
    from paymesh.cli import bootstrap
    from paymesh.launcher import Platform
    from paymesh.platform.logging import configure_logging
    from paymesh.settings import Settings

    configure_logging("WARNING")
    with tempfile.TemporaryDirectory(prefix="paymesh-bench-") as var:
        # The admin listener (metrics, health) on a port of its own: never a running 9100.
        admin = f"127.0.0.1:{_free_port()}" if metrics else ""
        settings = Settings(
            var_dir=Path(var),
            accounts={"listen": f"127.0.0.1:{_free_port()}", "admin_listen": admin},
            risk={"listen": f"127.0.0.1:{_free_port()}", "admin_listen": admin},
            payments={"listen": f"127.0.0.1:{_free_port()}", "admin_listen": admin},
            webhooks={"listen": f"127.0.0.1:{_free_port()}", "admin_listen": admin},
            gateway={"port": _free_port(), "admin_listen": admin},
        )
        platform = Platform(settings)
        await platform.start()
        try:
            creds = await bootstrap(platform)
            url = f"http://127.0.0.1:{settings.gateway.port}"
            scraper = asyncio.create_task(_scrape_every(f"http://{admin}/metrics", 5.0))
            if not metrics:
                scraper.cancel()
            try:
                return await run_load(url, creds, args.clients, args.seconds, args.max_payments)
            finally:
                scraper.cancel()
        finally:
            await platform.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running gateway; default: start an embedded platform")
    parser.add_argument("--credentials", type=Path, default=Path("var/demo-credentials.json"))
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--max-payments", type=int, default=50_000)
    parser.add_argument(
        "--observability",
        choices=["off", "on", "both"],
        default="off",
        help="metrics served and scraped, and tracing exporting to a local sink: off, on,"
        " or both compared in the same run (embedded only)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="runs per mode with 'both'")
    args = parser.parse_args()
    if args.url and args.observability != "off":
        parser.error("--observability needs the embedded platform (no --url)")
    if args.observability != "off":
        result = _observability(args)
    elif args.url:
        creds = json.loads(args.credentials.read_text())
        result = asyncio.run(
            run_load(args.url, creds, args.clients, args.seconds, args.max_payments)
        )
    else:
        result = asyncio.run(_with_embedded(args))
    print("e2e automatic-capture payments through the gateway (embedded, SQLite)")
    for key, value in result.items():
        print(f"  {key:15} {value}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
