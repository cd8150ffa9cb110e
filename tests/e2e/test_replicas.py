"""Two processes of every service under a mixed load while things break.

The distributed shape with every service twice (gateway x2 behind the load generator's
round robin; accounts, payments, risk and webhooks x2, their clients given both
addresses) on a PostgreSQL cluster, a Redis and a Kafka-protocol broker of the test's own.
While clients pay (automatic and manual), capture, cancel, refund and pay out, and a
merchant's endpoint receives webhooks, the test SIGKILLs a random replica of a random
service every few seconds and restarts it, restarts PostgreSQL once (``pg_ctl restart``)
and stops Redis for 10 s once.

Afterwards: no request failed except while a dependency every replica needs was down
(PostgreSQL or Redis), and then with a 503 whose retry converged; every payment is
terminal or ``requires_capture``; balances equal what the API answered; ``paymesh ledger
verify`` passes; each terminal event is on Kafka under exactly one event id; every
webhook was delivered at least once; and no saga step was run by two replicas at once.
The killer is seeded (PAYMESH_REPLICA_SEED) so a failing run can be replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from paymesh.contracts.events import TOPIC_PAYMENTS
from tests.conftest import free_port

from .receiver import Receiver
from .test_crash import expected_balances
from .test_distributed import (
    GRPC_SERVICES,
    ORDER,
    PAYMESH,
    Distributed,
    _die_with_parent,
    _run_async,
    read_topic,
)

SEED = int(os.environ.get("PAYMESH_REPLICA_SEED", "20261205"))
REPLICAS = 2
LOAD_S = 75.0  # how long the clients drive load while things break
WORKERS = 6
CUSTOMERS, MERCHANTS = 6, 3
TOPUP = 5_000_000
REQUEST_PATIENCE_S = 120.0
RETRY_STATUSES = {429, 500, 502, 503, 504}
# Events a merchant's endpoint subscribes to; each must arrive at least once.
HOOKED = ("payment.succeeded", "refund.succeeded", "payout.succeeded")


# --- PostgreSQL and Redis of the test's own, so it may restart and stop them --------


def _as_postgres(argv: list[str]) -> list[str]:
    """Run a PostgreSQL tool as the `postgres` user (initdb refuses root)."""
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def _pg_bin(tool: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}")) or [shutil.which(tool) or ""]
    if not found[-1]:
        pytest.fail(f"PostgreSQL's {tool} is not installed")
    return found[-1]


@dataclass
class PgCluster:
    """A PostgreSQL cluster in a temporary folder on a free port."""

    root: Path
    port: int = field(default_factory=free_port)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, db: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{db}"

    def ctl(self, *args: str) -> None:
        log = str(self.root / "postgres.log")
        subprocess.run(
            _as_postgres([_pg_bin("pg_ctl"), "-D", str(self.data), "-l", log, "-w", *args]),
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        subprocess.run(
            _as_postgres(
                [_pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres"]
            ),
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.root}'\nmax_connections = 400\n"
            )
        self.ctl("start")

    def restart(self) -> None:
        self.ctl("-m", "fast", "restart")

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.ctl("-m", "immediate", "stop")


@contextlib.contextmanager
def pg_cluster() -> Iterator[PgCluster]:
    root = Path(tempfile.mkdtemp(prefix="paymesh-pg-"))
    os.chmod(root, 0o755)
    cluster = PgCluster(root / "cluster")
    try:
        cluster.init()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class RedisServer:
    """A Redis on a free loopback port, without persistence, that can be stopped a while."""

    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                assert time.monotonic() < deadline, "redis did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


# --- every service twice --------------------------------------------------------------


@dataclass
class Replicated(Distributed):
    """:class:`Distributed` with `REPLICAS` processes of each service, named ``svc-1``..."""

    redis_url: str = ""

    def __post_init__(self) -> None:
        self.ports = {
            replica(name, i): free_port() for name in ORDER for i in range(1, REPLICAS + 1)
        }

    @property
    def url(self) -> str:
        return self.gateways[0]

    @property
    def gateways(self) -> list[str]:
        return [
            f"http://127.0.0.1:{self.ports[replica('gateway', i)]}" for i in range(1, REPLICAS + 1)
        ]

    def targets(self, service: str) -> str:
        """Both replicas' addresses, as a gRPC target the round-robin policy spreads over."""
        addresses = [f"127.0.0.1:{self.ports[replica(service, i)]}" for i in range(1, REPLICAS + 1)]
        return "ipv4:" + ",".join(addresses)

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "PAYMESH_VAR_DIR": str(self.workdir / "var"),
            "PAYMESH_LOG_LEVEL": "INFO",
            "PAYMESH_KAFKA__BOOTSTRAP_SERVERS": self.kafka,
            "PAYMESH_KAFKA__NAMESPACE": self.namespace,
            "PAYMESH_KAFKA__SESSION_TIMEOUT_MS": "6000",
            "PAYMESH_KAFKA__MAX_POLL_INTERVAL_MS": "10000",
            "PAYMESH_PAYMENTS__RESUME_INTERVAL_S": "0.5",
            "PAYMESH_WEBHOOKS__ALLOW_PRIVATE_ADDRESSES": "true",
            "PAYMESH_GATEWAY__DATABASE_URL": self.database_urls["gateway"],
            "PAYMESH_GATEWAY__HOST": "127.0.0.1",
            "PAYMESH_GATEWAY__PORT": str(self.ports[replica("gateway", 1)]),
            "PAYMESH_RISK__REDIS_URL": self.redis_url,
            "PAYMESH_GATEWAY__REDIS_URL": self.redis_url,
        }
        for name in ORDER:  # two processes of a service: each admin listener on a port of its own
            env[f"PAYMESH_{name.upper()}__ADMIN_LISTEN"] = "127.0.0.1:0"
        for name in GRPC_SERVICES:
            prefix = f"PAYMESH_{name.upper()}__"
            env[prefix + "DATABASE_URL"] = self.database_urls[name]
            env[prefix + "LISTEN"] = f"127.0.0.1:{self.ports[replica(name, 1)]}"
            env[prefix + "TARGET"] = self.targets(name)
        env.update(self.extra_env)
        return env

    def start(self, name: str) -> None:
        service, _, _ = name.rpartition("-")
        port = self.ports[name]
        env_extra = {"PAYMESH_GATEWAY__PORT": str(port)}
        if service in GRPC_SERVICES:
            env_extra = {f"PAYMESH_{service.upper()}__LISTEN": f"127.0.0.1:{port}"}
        saved = dict(self.extra_env)
        self.extra_env.update(env_extra)
        try:
            self._start(name, service)
        finally:
            self.extra_env = saved

    def _start(self, name: str, service: str) -> None:
        assert name not in self.procs or self.procs[name].poll() is not None
        log = self.log_path(name).open("ab")
        self._logs.append(log)
        env = self.env()
        self.procs[name] = subprocess.Popen(
            [str(PAYMESH), "serve", service],
            env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
        )  # fmt: skip

    def healthy(self, name: str, *, ready: bool = True) -> bool:
        """Whether `name` serves: ready (gRPC health SERVING), or with `ready` False
        answering its calls at all (SERVING or NOT_SERVING)."""
        proc = self.procs[name]
        if proc.poll() is not None:
            raise AssertionError(f"{name} exited with {proc.returncode}:\n{self.tail(name)}")
        service = name.rpartition("-")[0]
        port = self.ports[name]
        try:
            if service == "gateway":
                url = f"http://127.0.0.1:{port}/.well-known/jwks.json"
                return httpx.get(url, timeout=1).status_code == 200
            import grpc
            from grpc_health.v1 import health_pb2, health_pb2_grpc

            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                answer = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=""), timeout=1
                )
            return not ready or bool(answer.status == health_pb2.HealthCheckResponse.SERVING)
        except Exception:
            return False

    def stop_all(self) -> None:
        try:
            for name in sorted(self.procs, key=lambda n: n.startswith("gateway"), reverse=True):
                proc = self.procs[name]
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in self.procs.values():
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
        finally:
            self.procs.clear()
            for log in self._logs:
                log.close()


def replica(service: str, i: int) -> str:
    return f"{service}-{i}"


@contextlib.contextmanager
def replicated_platform(
    workdir: Path, kafka: str, pg: PgCluster, redis: RedisServer
) -> Iterator[Replicated]:
    """A database per service on `pg`; two processes of each service started healthy."""
    workdir.mkdir(parents=True, exist_ok=True)
    dbs = {name: f"paymesh_{name}" for name in ORDER}

    async def create() -> None:
        conn = await asyncpg.connect(pg.admin_dsn)
        try:
            for db in dbs.values():
                await conn.execute(f'CREATE DATABASE "{db}"')
        finally:
            await conn.close()

    _run_async(create)
    urls = {name: pg.url(db) for name, db in dbs.items()}
    platform = Replicated(workdir, kafka, urls, redis_url=redis.url)
    try:
        for i in range(1, REPLICAS + 1):  # both at once: migrations must serialise themselves
            for name in ORDER:
                platform.start(replica(name, i))
        for name in platform.procs:
            platform.wait_healthy(name, timeout_s=120)
        done = platform.bootstrap()
        assert done.returncode == 0, done.stdout + done.stderr
        platform.creds = json.loads(platform.credentials_file.read_text())
        yield platform
    finally:
        platform.stop_all()


# --- the clients ---------------------------------------------------------------------


@dataclass
class Outages:
    """When a dependency that every replica needs was down (monotonic seconds)."""

    windows: list[tuple[str, float, float]] = field(default_factory=list)
    t0: float = field(default_factory=time.monotonic)
    # A request that started before an outage ended may answer within this after it.
    grace_s: float = 15.0

    def covers(self, started: float, answered: float) -> str | None:
        for what, begin, end in self.windows:
            if started <= end + self.grace_s and answered >= begin:
                return what
        return None


@dataclass
class Stats:
    sent: int = 0
    answered: int = 0
    transport_errors: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    # (sent at, answered at, status, what) of every 5xx answer, judged after the run.
    fivexx: list[tuple[float, float, int, str]] = field(default_factory=list)
    retried: int = 0

    def judge(self, outages: Outages) -> tuple[Counter[str], list[str]]:
        """5xx answers explained by an outage (counted by cause), and the others."""
        allowed: Counter[str] = Counter()
        unexpected: list[str] = []
        for started, answered, status, what in self.fivexx:
            cause = outages.covers(started, answered)
            if cause is not None and status == 503:
                allowed[cause] += 1
            else:
                unexpected.append(f"{what} (sent at {started - outages.t0:.1f}s)")
        return allowed, unexpected


class Client:
    """A patient client over both gateways (round robin): the same Idempotency-Key until
    an answer comes; every 5xx is recorded against the outages."""

    def __init__(
        self, http: list[httpx.AsyncClient], stats: Stats, outages: Outages, rng: random.Random
    ) -> None:
        self.http = http
        self.stats = stats
        self.outages = outages
        self.turn = rng.randrange(len(http))

    def _next(self) -> httpx.AsyncClient:
        self.turn = (self.turn + 1) % len(self.http)
        return self.http[self.turn]

    async def send(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, key: str | None = None
    ) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key else {}
        deadline = time.monotonic() + REQUEST_PATIENCE_S
        delay = 0.05
        while True:
            self.stats.sent += 1
            started = time.monotonic()
            try:
                r = await self._next().request(method, path, json=body, headers=headers)
            except httpx.TransportError as exc:
                self.stats.transport_errors += 1  # a gateway died under the request
                why = repr(exc)
            else:
                self.stats.answered += 1
                self.stats.statuses[r.status_code] += 1
                if r.status_code >= 500:
                    self.stats.fivexx.append(
                        (started, time.monotonic(), r.status_code,
                         f"{method} {path} {r.status_code} {r.text[:300]}")
                    )  # fmt: skip
                if r.status_code not in RETRY_STATUSES and not _in_progress(r):
                    return r
                why = f"{r.status_code} {r.text[:200]}"
            self.stats.retried += 1
            if time.monotonic() > deadline:
                raise AssertionError(f"{method} {path}: no answer in {REQUEST_PATIENCE_S}s: {why}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def post(self, path: str, body: dict[str, Any], *, expect: int = 201) -> dict[str, Any]:
        r = await self.send("POST", path, body, key=str(uuid.uuid4()))
        assert r.status_code == expect, f"POST {path}: {r.status_code} {r.text}"
        result: dict[str, Any] = r.json()
        return result

    async def get(self, path: str) -> dict[str, Any]:
        r = await self.send("GET", path)
        assert r.status_code == 200, f"GET {path}: {r.status_code} {r.text}"
        result: dict[str, Any] = r.json()
        return result


def _in_progress(r: httpx.Response) -> bool:
    if r.status_code != 409:
        return False
    try:
        return bool(r.json().get("code") == "idempotency_key_in_progress")
    except ValueError:
        return False


@dataclass
class Run:
    payments: list[str] = field(default_factory=list)
    refunds: list[str] = field(default_factory=list)
    payouts: list[str] = field(default_factory=list)
    topups: list[str] = field(default_factory=list)
    actions: Counter[str] = field(default_factory=Counter)
    kills: Counter[str] = field(default_factory=Counter)
    done: bool = False


async def settled(client: Client, path: str, obj: dict[str, Any]) -> dict[str, Any]:
    deadline = time.monotonic() + REQUEST_PATIENCE_S
    while obj["status"] == "processing":
        assert time.monotonic() < deadline, f"stuck processing: {obj}"
        await asyncio.sleep(0.3)
        obj = await client.get(f"{path}/{obj['id']}")
    return obj


async def one_flow(
    client: Client, rng: random.Random, run: Run, customers: list[str], merchants: list[str]
) -> None:
    """Pay (automatic or manual); maybe capture or cancel; maybe refund; now and then a payout."""
    if rng.random() < 0.1:
        payout = await client.post(
            "/v1/payouts",
            {"account_id": rng.choice(customers), "amount": rng.randint(100, 2_000),
             "currency": "USD"},
        )  # fmt: skip
        run.payouts.append(payout["id"])
        run.actions["payout"] += 1
        return
    manual = rng.random() < 0.5
    payment = await client.post(
        "/v1/payments",
        {
            "payer_account_id": rng.choice(customers),
            "payee_account_id": rng.choice(merchants),
            "amount": rng.randint(100, 5_000),
            "currency": "USD",
            "capture_method": "manual" if manual else "automatic",
        },
    )
    run.payments.append(payment["id"])
    run.actions["manual" if manual else "automatic"] += 1
    payment = await settled(client, "/v1/payments", payment)
    if payment["status"] == "requires_capture":
        roll = rng.random()
        if roll < 0.15:
            return
        if roll < 0.3:
            await client.post(f"/v1/payments/{payment['id']}/cancel", {}, expect=200)
            run.actions["cancel"] += 1
            return
        part = rng.choice([None, rng.randint(1, payment["amount"])])
        payment = await client.post(
            f"/v1/payments/{payment['id']}/capture", {} if part is None else {"amount": part},
            expect=200,
        )  # fmt: skip
        run.actions["capture"] += 1
        payment = await settled(client, "/v1/payments", payment)
    if payment["status"] == "succeeded" and rng.random() < 0.35:
        refund = await client.post(
            "/v1/refunds",
            {"payment_id": payment["id"], "amount": 1 + payment["amount_captured"] // 2},
        )
        run.refunds.append(refund["id"])
        run.actions["refund"] += 1


async def driver(
    client: Client, rng: random.Random, run: Run, customers: list[str], merchants: list[str]
) -> None:
    while not run.done:
        await one_flow(client, rng, run, customers, merchants)
        await asyncio.sleep(rng.uniform(0.05, 0.4))


# --- what breaks ---------------------------------------------------------------------


async def killer(platform: Replicated, rng: random.Random, run: Run) -> None:
    """SIGKILL a random replica of each service in turn (a shuffled round), restart it,
    wait until it answers calls, pause a second or three; again until the load ends."""
    while not run.done:
        for service in rng.sample(ORDER, len(ORDER)):
            await asyncio.sleep(rng.uniform(1.0, 3.0))
            if run.done:
                return
            name = replica(service, rng.randint(1, REPLICAS))
            await asyncio.to_thread(platform.kill, name)
            run.kills[name] += 1
            await asyncio.sleep(rng.uniform(0.0, 0.5))
            platform.restart(name)
            await platform.await_answering(name, timeout_s=120)


async def breaker(pg: PgCluster, redis: RedisServer, outages: Outages, run: Run) -> None:
    """Restart PostgreSQL once, then stop Redis for 10 s once."""
    await asyncio.sleep(LOAD_S * 0.25)
    begin = time.monotonic()
    await asyncio.to_thread(pg.restart)
    outages.windows.append(("postgresql restart", begin, time.monotonic()))
    print(f"replica test: PostgreSQL restarted at {begin - outages.t0:.1f}s")
    await asyncio.sleep(LOAD_S * 0.25)
    begin = time.monotonic()
    redis.stop()
    try:
        await asyncio.sleep(10)
    finally:
        redis.start()
    outages.windows.append(("redis stopped", begin, time.monotonic()))
    print(f"replica test: Redis stopped at {begin - outages.t0:.1f}s for 10 s")


# --- the checks ----------------------------------------------------------------------


def concurrent_steps(platform: Replicated) -> list[str]:
    """Log lines where a payments replica found another runner had done its step meanwhile."""
    found = []
    for i in range(1, REPLICAS + 1):
        path = platform.log_path(replica("payments", i))
        for line in path.read_text(errors="replace").splitlines():
            if "saga_step_raced" in line:
                found.append(line)
    return found


async def test_two_replicas_of_every_service_survive_kills_and_outages_under_load(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    redis = RedisServer()
    redis.start()
    receiver = Receiver()
    await receiver.start()
    outages, stats, run = Outages(), Stats(), Run()
    https: list[httpx.AsyncClient] = []
    try:
        with (
            pg_cluster() as pg,
            replicated_platform(tmp_path / "replicas", kafka_bootstrap, pg, redis) as platform,
        ):
            creds = platform.creds
            for url in platform.gateways:
                http = httpx.AsyncClient(base_url=url, timeout=30)
                form = {
                    "grant_type": "client_credentials",
                    "client_id": creds["client_id"],
                    "client_secret": creds["client_secret"],
                }
                r = await http.post("/v1/oauth/token", data=form)
                assert r.status_code == 200, r.text
                http.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
                https.append(http)
            client = Client(https, stats, outages, rng)
            endpoint = await client.post(
                "/v1/webhook_endpoints", {"url": receiver.url, "events": list(HOOKED)}
            )
            customers = [
                (await client.post("/v1/accounts", {"currency": "USD", "type": "customer"}))["id"]
                for _ in range(CUSTOMERS)
            ]
            merchants = [
                (await client.post("/v1/accounts", {"currency": "USD", "type": "merchant"}))["id"]
                for _ in range(MERCHANTS)
            ]
            for c in customers:
                topup = await client.post(
                    "/v1/topups", {"account_id": c, "amount": TOPUP, "currency": "USD"}
                )
                assert topup["status"] == "succeeded", topup

            started = outages.t0 = time.monotonic()
            chaos = [
                asyncio.create_task(killer(platform, random.Random(rng.random()), run)),
                asyncio.create_task(breaker(pg, redis, outages, run)),
            ]
            drivers = [
                asyncio.create_task(
                    driver(
                        Client(https, stats, outages, random.Random(rng.random())),
                        random.Random(rng.random()), run, customers, merchants,
                    )
                )
                for _ in range(WORKERS)
            ]  # fmt: skip
            await asyncio.sleep(LOAD_S)
            run.done = True
            await asyncio.gather(*drivers)
            await asyncio.gather(*chaos)
            for name in list(platform.procs):
                if platform.procs[name].poll() is not None:  # pragma: no cover
                    platform.restart(name)
            for name in list(platform.procs):
                await platform.await_healthy(name, timeout_s=120)
            took = time.monotonic() - started

            payments = [await client.get(f"/v1/payments/{p}") for p in run.payments]
            payments = [await settled(client, "/v1/payments", p) for p in payments]
            refunds = [
                await settled(client, "/v1/refunds", await client.get(f"/v1/refunds/{r}"))
                for r in run.refunds
            ]
            payouts = [
                await settled(client, "/v1/payouts", await client.get(f"/v1/payouts/{o}"))
                for o in run.payouts
            ]
            statuses = Counter(p["status"] for p in payments)
            allowed, unexpected = stats.judge(outages)
            print(
                f"\nreplica test: {took:.0f}s of load; kills {dict(run.kills)}; "
                f"outages {[(w, round(e - b, 1)) for w, b, e in outages.windows]}"
                f"\nreplica test: requests sent {stats.sent}, answered {stats.answered}, "
                f"transport errors {stats.transport_errors}, retried {stats.retried}, "
                f"statuses {dict(sorted(stats.statuses.items()))}"
                f"\nreplica test: 5xx during outages {dict(allowed)}, "
                f"5xx otherwise {len(unexpected)}"
                f"\nreplica test: actions {dict(run.actions)}; payment statuses {dict(statuses)}"
            )
            assert not unexpected, unexpected[:10]
            assert sum(run.kills.values()) >= 10, run.kills
            assert {name.rpartition("-")[0] for name in run.kills} == set(ORDER), run.kills
            assert set(statuses) <= {"succeeded", "failed", "canceled", "requires_capture"}
            assert statuses["succeeded"] > 20, statuses

            expected = expected_balances(payments, refunds, customers, topup=TOPUP, payouts=payouts)
            for account in [*customers, *merchants]:
                got = (await client.get(f"/v1/accounts/{account}"))["balance"]
                want = expected.get(account, {"posted": 0, "available": 0, "pending": 0})
                assert got == want, f"{account}: {got} != {want}"

            verified = subprocess.run(
                [str(PAYMESH), "ledger", "verify", "--database-url",
                 platform.database_urls["accounts"]],
                env=platform.env(), capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip
            assert verified.returncode == 0, verified.stdout + verified.stderr
            print("replica test: paymesh ledger verify ok")

            # Each terminal state change on Kafka under exactly one event id.
            wanted = {(p["id"], f"payment.{p['status']}") for p in payments}
            wanted |= {(r["id"], f"refund.{r['status']}") for r in refunds}
            wanted |= {(o["id"], f"payout.{o['status']}") for o in payouts}
            records = await asyncio.to_thread(
                read_topic,
                platform.kafka,
                platform.topic(TOPIC_PAYMENTS),
                lambda rs: {(r.event.subject, r.event.type) for r in rs} >= wanted,
                90,
            )
            ids: dict[tuple[str, str], set[str]] = defaultdict(set)
            copies: Counter[str] = Counter()
            for r in records:
                if (r.event.subject, r.event.type) in wanted:
                    ids[(r.event.subject, r.event.type)].add(r.event.id)
                    copies[r.event.id] += 1
            lost = wanted - set(ids)
            assert not lost, f"{len(lost)} terminal events never reached Kafka: {sorted(lost)[:5]}"
            twice = {k: v for k, v in ids.items() if len(v) != 1}
            assert not twice, f"state changes published under several event ids: {twice}"
            redelivered = sum(n - 1 for n in copies.values())
            print(
                f"replica test: {len(wanted)} terminal events on Kafka, one id each "
                f"({redelivered} records published again by a relay that died before marking)"
            )

            # Every hooked event delivered at least once to the merchant's endpoint.
            hooked = {
                (subject, kind): next(iter(ids[(subject, kind)]))
                for subject, kind in wanted
                if kind in HOOKED
            }
            deadline = time.monotonic() + 90
            while True:
                got_ids = {req.headers.get("paymesh-event-id") for req in receiver.requests}
                missing = {k for k, v in hooked.items() if v not in got_ids}
                if not missing or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
            assert not missing, f"{len(missing)} webhooks never delivered: {sorted(missing)[:5]}"
            print(
                f"replica test: {len(hooked)} webhooks delivered at least once to "
                f"{endpoint['id']} ({len(receiver.requests)} requests received)"
            )

            raced = concurrent_steps(platform)
            assert not raced, f"saga steps run by two runners at once: {raced[:5]}"
            print("replica test: no saga step was run by two replicas at once")
    finally:
        for http in https:
            await http.aclose()
        await receiver.stop()
        redis.stop()
