"""The ledger's speed, side by side with pgbench on the same PostgreSQL.

One run, the same number of clients everywhere:

(a) pgbench's built-in TPC-B-like script (update an account, a teller and a
    branch balance, insert a history row: a ledger-like write) on a fresh
    database;
(b) paymesh transfers through the accounts service's gRPC API, the service
    running as its own process (`paymesh serve accounts`) on a fresh
    database of the same server, each client sending one transfer per call
    (the service's group commit merges concurrent calls), and again with
    100 transfers per call;
(c) the same on SQLite, as in the embedded shape.

It prints rates, their ratio and p50/p99 latency per call, then runs
`paymesh ledger verify` on the databases it wrote. It also prints the rate
of a no-op gRPC call between the same Python client and server: the
ceiling of any one-transfer-per-call rate on this machine. Bounded in time;
it asserts nothing about speed.

    python bench/ledger.py [--clients 16] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
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

from paymesh.contracts.accounts.v1 import accounts_pb2 as pb
from paymesh.contracts.accounts.v1.accounts_pb2_grpc import AccountsStub
from paymesh.platform.identity import Caller
from paymesh.platform.rpc import open_channel

PG = os.environ.get("PAYMESH_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
BIN = Path(sys.executable).parent
CALLER = Caller(tenant_id="ten_bench", client_id="bench")
ACCOUNTS = 1_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _create_db(name: str) -> None:
    conn = await asyncpg.connect(f"{PG}/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _drop_db(name: str) -> None:
    conn = await asyncpg.connect(f"{PG}/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def run_pgbench(db: str, clients: int, seconds: float) -> dict[str, Any]:
    """pgbench's TPC-B-like script on a fresh database; rate and latency."""
    host = PG.split("@")[-1].split(":")[0]
    port = PG.rsplit(":", 1)[-1]
    base = ["-h", host, "-p", port, "-U", "postgres"]
    subprocess.run(
        ["pgbench", *base, "-i", "-q", "-s", str(clients), db],
        check=True,
        capture_output=True,
    )
    with tempfile.TemporaryDirectory() as logs:
        out = subprocess.run(
            ["pgbench", *base, "-c", str(clients), "-j", "2", "-T", str(int(seconds)),
             "-b", "tpcb-like", "-l", "--log-prefix", f"{logs}/tx", db],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        latencies = []
        for log in Path(logs).glob("tx*"):
            for line in log.read_text().splitlines():
                latencies.append(int(line.split()[2]) / 1000)  # microseconds → ms
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return {"rate": tps, "p50_ms": _pct(latencies, 0.5), "p99_ms": _pct(latencies, 0.99)}


class AccountsProcess:
    """`paymesh serve accounts` as its own process on a given database."""

    def __init__(self, database_url: str, var: Path) -> None:
        self.port = _free_port()
        env = {
            **os.environ,
            "PAYMESH_VAR_DIR": str(var),
            "PAYMESH_ACCOUNTS__DATABASE_URL": database_url,
            "PAYMESH_ACCOUNTS__LISTEN": f"127.0.0.1:{self.port}",
            "PAYMESH_ACCOUNTS__ADMIN_LISTEN": "127.0.0.1:0",  # never a running platform's 9100
            "PAYMESH_LOG_LEVEL": "WARNING",
        }
        self.proc = subprocess.Popen(
            [str(BIN / "paymesh"), "serve", "accounts"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    async def wait_ready(self) -> None:
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        deadline = time.monotonic() + 60
        async with grpc.aio.insecure_channel(f"127.0.0.1:{self.port}") as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            while True:
                if self.proc.poll() is not None:
                    err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                    raise RuntimeError(f"paymesh serve accounts exited:\n{err}")
                try:
                    r = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if r.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.aio.AioRpcError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("accounts did not become healthy")
                await asyncio.sleep(0.2)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def _setup_accounts(stub: AccountsStub, meta: Any) -> list[str]:
    ids = [f"acct_b{i:05d}" for i in range(ACCOUNTS)]
    flags = pb.AccountFlags(debits_must_not_exceed_credits=True)
    accounts = [pb.Account(id="acct_bank", currency="USD", code="funding")]
    accounts += [pb.Account(id=i, currency="USD", flags=flags, code="customer") for i in ids]
    await stub.CreateAccounts(pb.CreateAccountsRequest(accounts=accounts), **meta)
    funding = [
        pb.Transfer(id=f"fund_{i}", debit_account_id="acct_bank", credit_account_id=i,
                    amount=10**12, currency="USD", code="topup")
        for i in ids
    ]  # fmt: skip
    await stub.CreateTransfers(pb.CreateTransfersRequest(transfers=funding), **meta)
    return ids


async def run_paymesh(target: str, clients: int, seconds: float, per_call: int) -> dict[str, Any]:
    """Transfers between random accounts; `per_call` transfers in each CreateTransfers."""
    meta = {"metadata": CALLER.metadata(), "timeout": 30.0}
    channels = [open_channel(target) for _ in range(min(clients, 4))]
    try:
        stubs = [AccountsStub(ch) for ch in channels]
        ids = await _setup_accounts(stubs[0], meta)
        run = secrets.token_hex(3)
        latencies: list[float] = []
        done = 0
        failed = 0
        deadline = time.perf_counter() + seconds

        async def client(n: int) -> None:
            nonlocal done, failed
            rng = random.Random(n)
            stub = stubs[n % len(stubs)]
            k = 0
            while time.perf_counter() < deadline:
                transfers = []
                for _ in range(per_call):
                    a, b = rng.sample(ids, 2)
                    transfers.append(
                        pb.Transfer(id=f"t{run}_{n}_{k}", debit_account_id=a, credit_account_id=b,
                                    amount=rng.randint(1, 5000), currency="USD", code="bench")
                    )  # fmt: skip
                    k += 1
                t0 = time.perf_counter()
                reply = await stub.CreateTransfers(
                    pb.CreateTransfersRequest(transfers=transfers), **meta
                )
                latencies.append((time.perf_counter() - t0) * 1000)
                ok = sum(1 for r in reply.results if r == pb.CREATE_TRANSFER_RESULT_OK)
                done += ok
                failed += len(reply.results) - ok

        started = time.perf_counter()
        await asyncio.gather(*(client(n) for n in range(clients)))
        elapsed = time.perf_counter() - started
    finally:
        for ch in channels:
            await ch.close()
    return {
        "rate": done / elapsed,
        "p50_ms": _pct(latencies, 0.5),
        "p99_ms": _pct(latencies, 0.99),
        "failed": failed,
        "calls": len(latencies),
    }


async def run_noop(target: str, clients: int, seconds: float) -> dict[str, Any]:
    """The ceiling of Python gRPC itself here: a no-op call (health Check)."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    channels = [open_channel(target) for _ in range(min(clients, 4))]
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    try:
        stubs = [health_pb2_grpc.HealthStub(ch) for ch in channels]

        async def client(n: int) -> None:
            stub = stubs[n % len(stubs)]
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                await stub.Check(health_pb2.HealthCheckRequest(), timeout=30)
                latencies.append((time.perf_counter() - t0) * 1000)

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
    }


async def _paymesh_on(url: str, var: Path, clients: int, seconds: float, per_call: int) -> Any:
    server = AccountsProcess(url, var)
    try:
        await server.wait_ready()
        if per_call == 0:
            return await run_noop(f"127.0.0.1:{server.port}", clients, seconds)
        return await run_paymesh(f"127.0.0.1:{server.port}", clients, seconds, per_call)
    finally:
        server.stop()


def _verify(url: str) -> str:
    if subprocess.run([str(BIN / "paymesh"), "ledger", "--help"], capture_output=True).returncode:
        return "skipped (no `paymesh ledger verify` in this build)"
    r = subprocess.run(
        [str(BIN / "paymesh"), "ledger", "verify", "--database-url", url],
        capture_output=True,
        text=True,
    )
    last = (r.stdout.strip() or r.stderr.strip()).splitlines()[-1:]
    return ("ok: " if r.returncode == 0 else "FAILED: ") + " ".join(last)


def _line(name: str, r: dict[str, Any]) -> str:
    return f"  {name:44} {r['rate']:9.0f}/s   p50 {r['p50_ms']:6.1f} ms   p99 {r['p99_ms']:6.1f} ms"


async def main_async(args: argparse.Namespace) -> None:
    tag = secrets.token_hex(3)
    pgb_db, ledger_db = f"bench_pgbench_{tag}", f"bench_ledger_{tag}"
    pg_url = f"{PG.replace('postgresql://', 'postgresql+asyncpg://')}/{ledger_db}"
    var = Path(tempfile.mkdtemp(prefix="paymesh-bench-"))
    sqlite_url = f"sqlite+aiosqlite:///{var / 'accounts.db'}"
    c, s = args.clients, args.seconds
    print(f"ledger benchmark: {c} clients, {s:.0f} s per run, {os.cpu_count()} cores")
    try:
        await _create_db(pgb_db)
        await _create_db(ledger_db)
        pgbench = run_pgbench(pgb_db, c, s)
        print(_line("pgbench tpcb-like (transactions)", pgbench), flush=True)
        noop = await _paymesh_on(sqlite_url, var, c, s / 2, 0)
        print(_line("gRPC no-op calls (Python client+server)", noop), flush=True)
        one = await _paymesh_on(pg_url, var, c, s, 1)
        print(_line("paymesh PostgreSQL, 1 transfer/call", one), flush=True)
        hundred = await _paymesh_on(pg_url, var, c, s, 100)
        print(_line("paymesh PostgreSQL, 100 transfers/call", hundred), flush=True)
        lite_one = await _paymesh_on(sqlite_url, var, c, s, 1)
        print(_line("paymesh SQLite (embedded), 1 transfer/call", lite_one), flush=True)
        lite_hundred = await _paymesh_on(sqlite_url, var, c, s, 100)
        print(_line("paymesh SQLite (embedded), 100 transfers/call", lite_hundred), flush=True)
        print(f"  ratio paymesh/pgbench, 1 transfer/call:   {one['rate'] / pgbench['rate']:.2f}x")
        print(
            f"  ratio paymesh/pgbench, 100 transfers/call: {hundred['rate'] / pgbench['rate']:.2f}x"
        )
        refused = one["failed"] + hundred["failed"] + lite_one["failed"] + lite_hundred["failed"]
        print(f"  transfers refused by the ledger: {refused}")
        print(f"  ledger verify (PostgreSQL): {_verify(pg_url)}")
        print(f"  ledger verify (SQLite):     {_verify(sqlite_url)}")
    finally:
        await _drop_db(pgb_db)
        await _drop_db(ledger_db)
        shutil.rmtree(var, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
