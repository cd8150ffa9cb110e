"""The risk service's speed with a realistic rule set (deploy/risk-rules.yaml: 21
rules, velocity over payer/device/IP/payee, lists, new accounts, country, z-score).

The service runs as its own process (`paymesh serve risk`), twice:

- distributed: PostgreSQL for decisions, reviews and lists, Redis for the
  velocity windows and payer history;
- embedded-style: one SQLite file for everything.

Against each it drives Decide over gRPC, every call a new payment from a pool
of payers, devices and IPs (some of them on block lists):

(a) open loop at a fixed rate (default 1000 decisions/s, then 200/s, a rate
    one process sustains) for ~10 s each; latency is measured from each call's
    *scheduled* start, so a server that falls behind is charged for the queue
    (no coordinated omission);
(b) closed loop with 16 concurrent callers, as fast as it answers.

It also prints a no-op gRPC call (health Check) at the same fixed rate (the
floor of any Python gRPC call here) and the in-process engine alone
(`evaluate()` with precomputed features: no gRPC, no database). Bounded in
time; it asserts nothing about speed.

    python bench/risk.py [--rate 1000] [--low-rate 200] [--seconds 10] [--clients 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import redis.asyncio as aioredis

from paymesh.contracts.risk.v1 import risk_pb2 as pb
from paymesh.contracts.risk.v1.risk_pb2_grpc import RiskStub
from paymesh.platform.identity import Caller
from paymesh.platform.rpc import open_channel

PG = os.environ.get("PAYMESH_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
REDIS = os.environ.get("PAYMESH_BENCH_REDIS", "redis://127.0.0.1:6379/0")
BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "deploy" / "risk-rules.yaml"
CALLER = Caller(tenant_id="ten_bench", client_id="bench")
ADMIN = Caller(tenant_id="ten_bench", client_id="bench-ops", scopes=frozenset({"risk:admin"}))
PAYERS, DEVICES, IPS, PAYEES = 20_000, 15_000, 5_000, 200
COUNTRIES = ["US"] * 8 + ["GB", "FR"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class RiskProcess:
    """`paymesh serve risk` as its own process."""

    def __init__(self, env: dict[str, str], var: Path) -> None:
        self.port = _free_port()
        full = {
            **os.environ,
            "PAYMESH_VAR_DIR": str(var),
            "PAYMESH_RISK__LISTEN": f"127.0.0.1:{self.port}",
            "PAYMESH_RISK__ADMIN_LISTEN": "127.0.0.1:0",  # never a running platform's 9100
            "PAYMESH_RISK__RULES_FILE": str(RULES),
            "PAYMESH_LOG_LEVEL": "WARNING",
            **env,
        }
        self.log = var / f"risk-{self.port}.log"
        self.proc = subprocess.Popen(
            [str(BIN / "paymesh"), "serve", "risk"],
            env=full,
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("wb"),
        )

    async def wait_ready(self) -> None:
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        deadline = time.monotonic() + 60
        async with grpc.aio.insecure_channel(f"127.0.0.1:{self.port}") as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            while True:
                if self.proc.poll() is not None:
                    err = self.log.read_text()[-3000:]
                    raise RuntimeError(f"paymesh serve risk exited:\n{err}")
                try:
                    r = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if r.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.aio.AioRpcError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("risk did not become healthy")
                await asyncio.sleep(0.2)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Workload:
    """Payments from a pool of payers, devices and IPs; a new payment id each call."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.run = secrets.token_hex(4)
        self.n = 0

    def request(self) -> pb.DecideRequest:
        rng = self.rng
        self.n += 1
        payer = rng.randrange(PAYERS)
        return pb.DecideRequest(
            payment_id=f"pay_{self.run}_{self.n}",
            payer_account_id=f"acct_p{payer}",
            payee_account_id=f"acct_m{rng.randrange(PAYEES)}",
            amount=int(rng.lognormvariate(8, 1.2)) + 1,
            currency="USD",
            context=pb.PaymentContext(
                ip=f"10.{rng.randrange(IPS) // 250}.{rng.randrange(IPS) % 250}.1",
                device_id=f"dev_{(payer * 7 + rng.randrange(3)) % DEVICES}",
                country=rng.choice(COUNTRIES),
            ),
        )


async def _seed_lists(stub: RiskStub) -> None:
    meta = {"metadata": ADMIN.metadata(), "timeout": 30.0}
    for n in range(50):
        await stub.AddListEntry(
            pb.AddListEntryRequest(list="blocked_ips", value=f"10.0.{n}.1"), **meta
        )
        await stub.AddListEntry(
            pb.AddListEntryRequest(list="trusted_accounts", value=f"acct_p{n}"), **meta
        )
    await stub.AddListEntry(pb.AddListEntryRequest(list="sanctioned_countries", value="KP"), **meta)


async def open_loop(target: str, rate: float, seconds: float, noop: bool = False) -> dict[str, Any]:
    """One call every 1/rate s whatever the answers; latency from the scheduled start."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    channels = [open_channel(target) for _ in range(4)]
    stubs = [RiskStub(ch) for ch in channels]
    health = [health_pb2_grpc.HealthStub(ch) for ch in channels]
    meta = {"metadata": CALLER.metadata(), "timeout": 30.0}
    work = Workload(1)
    latencies: list[float] = []
    outcomes: dict[int, int] = {}
    failed = 0
    codes: dict[str, int] = {}
    total = int(rate * seconds)

    async def one(i: int, scheduled: float) -> None:
        nonlocal failed
        try:
            if noop:
                await health[i % 4].Check(health_pb2.HealthCheckRequest(), timeout=30)
            else:
                d = await stubs[i % 4].Decide(work.request(), **meta)
                outcomes[d.outcome] = outcomes.get(d.outcome, 0) + 1
        except grpc.aio.AioRpcError as exc:
            failed += 1
            codes[exc.code().name] = codes.get(exc.code().name, 0) + 1
            return
        latencies.append((time.perf_counter() - scheduled) * 1000)

    try:
        # Warm the channels up.
        for h in health:
            await h.Check(health_pb2.HealthCheckRequest(), timeout=30)
        tasks = []
        start = time.perf_counter()
        for i in range(total):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, scheduled)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    finally:
        for ch in channels:
            await ch.close()
    return {
        "rate": len(latencies) / elapsed,
        "p50_ms": _pct(latencies, 0.5),
        "p99_ms": _pct(latencies, 0.99),
        "failed": failed,
        "outcomes": outcomes,
        "codes": codes,
    }


async def closed_loop(target: str, clients: int, seconds: float) -> dict[str, Any]:
    """`clients` callers, each sending its next Decide when the last one answers."""
    channels = [open_channel(target) for _ in range(4)]
    stubs = [RiskStub(ch) for ch in channels]
    meta = {"metadata": CALLER.metadata(), "timeout": 30.0}
    latencies: list[float] = []
    outcomes: dict[int, int] = {}
    deadline = time.perf_counter() + seconds

    async def client(n: int) -> None:
        work = Workload(100 + n)
        stub = stubs[n % len(stubs)]
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            d = await stub.Decide(work.request(), **meta)
            latencies.append((time.perf_counter() - t0) * 1000)
            outcomes[d.outcome] = outcomes.get(d.outcome, 0) + 1

    try:
        started = time.perf_counter()
        await asyncio.gather(*(client(n) for n in range(clients)))
        elapsed = time.perf_counter() - started
    finally:
        for ch in channels:
            await ch.close()
    return {
        "rate": len(latencies) / elapsed,
        "p50_ms": _pct(latencies, 0.5),
        "p99_ms": _pct(latencies, 0.99),
        "failed": 0,
        "outcomes": outcomes,
    }


def engine_alone(seconds: float) -> dict[str, Any]:
    """`evaluate()` with the example rules and precomputed features, in this process."""
    from paymesh.risk.domain import (
        AmountStats,
        DecidePayment,
        Features,
        PayerHistory,
        PaymentContext,
        WindowStats,
        evaluate,
    )
    from paymesh.risk.rules import read_rules

    rules = read_rules(str(RULES))
    rng = random.Random(7)
    now = 1_800_000_000_000_000
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        payment = DecidePayment(
            f"pay_{len(latencies)}",
            "ten_bench",
            f"acct_p{rng.randrange(PAYERS)}",
            "acct_m1",
            int(rng.lognormvariate(8, 1.2)) + 1,
            "USD",
            PaymentContext(ip="10.0.0.1", device_id="dev_1", country=rng.choice(COUNTRIES)),
        )
        features = Features(
            now_us=now,
            windows={
                key: WindowStats(rng.randrange(6), rng.randrange(50_000))
                for key in rules.needs.windows
            },
            payer=PayerHistory(now - 10**12, 20, "US", AmountStats(20, 3_000.0, 4e8)),
            lists=frozenset({("blocked_ips", "10.9.9.9")}),
        )
        t0 = time.perf_counter()
        evaluate(rules, payment, features)
        latencies.append((time.perf_counter() - t0) * 1000)
    elapsed = time.perf_counter() - started
    return {
        "rate": len(latencies) / elapsed,
        "p50_ms": _pct(latencies, 0.5),
        "p99_ms": _pct(latencies, 0.99),
        "failed": 0,
        "outcomes": {},
    }


_NAMES = {pb.OUTCOME_APPROVE: "approve", pb.OUTCOME_REVIEW: "review", pb.OUTCOME_DECLINE: "decline"}


def _line(name: str, r: dict[str, Any]) -> str:
    mix = ", ".join(f"{_NAMES.get(k, k)} {v}" for k, v in sorted(r["outcomes"].items()))
    extra = f"   [{mix}]" if mix else ""
    if r["failed"]:
        extra += f"   failed {r['failed']} {r.get('codes', '')}"
    return (
        f"  {name:46} {r['rate']:8.0f}/s   p50 {r['p50_ms']:7.3f} ms   "
        f"p99 {r['p99_ms']:7.3f} ms{extra}"
    )


async def _against(name: str, env: dict[str, str], var: Path, args: argparse.Namespace) -> None:
    server = RiskProcess(env, var)
    try:
        await server.wait_ready()
        target = f"127.0.0.1:{server.port}"
        async with open_channel(target) as ch:
            await _seed_lists(RiskStub(ch))
        r = await open_loop(target, args.rate, args.seconds)
        print(_line(f"{name}: open loop {args.rate:.0f}/s", r), flush=True)
        if args.low_rate:
            r = await open_loop(target, args.low_rate, args.seconds)
            print(_line(f"{name}: open loop {args.low_rate:.0f}/s", r), flush=True)
        r = await closed_loop(target, args.clients, args.seconds)
        print(_line(f"{name}: closed loop, {args.clients} callers", r), flush=True)
        if args.noop:
            r = await open_loop(target, args.rate, min(args.seconds, 5), noop=True)
            print(_line(f"gRPC no-op (health Check), open loop {args.rate:.0f}/s", r), flush=True)
    finally:
        server.stop()
        errors = [line for line in server.log.read_text().splitlines() if '"error"' in line]
        if errors:
            print(f"  ({len(errors)} error lines in the server log; last: {errors[-1][:300]})")


async def main_async(args: argparse.Namespace) -> None:
    tag = secrets.token_hex(3)
    db = f"bench_risk_{tag}"
    prefix = f"paymesh:bench:{tag}"
    var = Path(tempfile.mkdtemp(prefix="paymesh-bench-risk-"))
    print(
        f"risk benchmark: rules {RULES.name}, {args.seconds:.0f} s per run, {os.cpu_count()} cores"
    )
    print(
        _line("engine alone: evaluate() with features", engine_alone(min(args.seconds, 3))),
        flush=True,
    )
    conn = await asyncpg.connect(f"{PG}/postgres")
    await conn.execute(f'CREATE DATABASE "{db}"')
    await conn.close()
    try:
        await _against(
            "distributed (PostgreSQL + Redis)",
            {
                "PAYMESH_RISK__DATABASE_URL": f"{PG.replace('postgresql://', 'postgresql+asyncpg://')}/{db}",
                "PAYMESH_RISK__REDIS_URL": REDIS,
                "PAYMESH_RISK__REDIS_PREFIX": prefix,
            },
            var,
            args,
        )
        await _against(
            "embedded-style (SQLite)",
            {"PAYMESH_RISK__DATABASE_URL": f"sqlite+aiosqlite:///{var / 'risk.db'}"},
            var,
            args,
        )
    finally:
        conn = await asyncpg.connect(f"{PG}/postgres")
        await conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        await conn.close()
        client = aioredis.from_url(REDIS)
        keys = [k async for k in client.scan_iter(match=prefix + ":*")]
        for i in range(0, len(keys), 1000):
            await client.delete(*keys[i : i + 1000])
        await client.aclose()
        shutil.rmtree(var, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument(
        "--low-rate", type=float, default=200.0, help="a second open-loop rate (0: none)"
    )
    parser.add_argument("--no-noop", dest="noop", action="store_false")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
