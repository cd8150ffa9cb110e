"""The distributed shape: every service its own process (`paymesh serve <service>`), each
on its own PostgreSQL database, events on a real Kafka-protocol broker, driven through the
gateway like a client would. Also home of :class:`Distributed`, which the crash test uses.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import asyncpg
import grpc
import httpx
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from grpc_health.v1 import health_pb2, health_pb2_grpc

from paymesh.contracts.events import TOPIC_PAYMENTS, Event
from tests.conftest import PG_ADMIN, free_port

from . import settlement_helpers
from .conftest import Api
from .scrape import scrape, total
from .test_flows import money_flows

GRPC_SERVICES = ("accounts", "risk", "payments", "webhooks")
# Start order: what others call comes first; the gateway opens the door last.
ORDER = ("accounts", "risk", "payments", "webhooks", "gateway")
PAYMESH = Path(sys.executable).parent / "paymesh"

_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it if the test process dies, so none is orphaned."""
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _run_async(coro_fn: Callable[[], Any]) -> Any:
    """Run a coroutine function to completion from sync code, whatever loop is running."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(coro_fn())).result()


@contextmanager
def pg_databases(names: tuple[str, ...]) -> Iterator[dict[str, str]]:
    """One fresh PostgreSQL database per name (SQLAlchemy URLs), all dropped afterwards."""
    base = PG_ADMIN.rsplit("/", 1)[0]
    dbs = {name: f"paymesh_test_{name}_{secrets.token_hex(5)}" for name in names}

    async def each(statement: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN)
        try:
            for db in dbs.values():
                await conn.execute(statement.format(db=db))
        finally:
            await conn.close()

    try:
        _run_async(lambda: each('CREATE DATABASE "{db}"'))
        yield {
            name: f"{base.replace('postgresql://', 'postgresql+asyncpg://')}/{db}"
            for name, db in dbs.items()
        }
    finally:
        _run_async(lambda: each('DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))


def asyncpg_dsn(url: str) -> str:
    """The asyncpg DSN of a ``postgresql+asyncpg://`` URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://")


@dataclass
class Distributed:
    """paymesh as one OS process per service on PostgreSQL and Kafka; stops every one it started."""

    workdir: Path
    kafka: str
    database_urls: dict[str, str]
    ports: dict[str, int] = field(default_factory=dict)
    # Each process's admin listener (/metrics, /healthz, /readyz).
    admin_ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    creds: dict[str, str] = field(default_factory=dict)
    restarts: Counter[str] = field(default_factory=Counter)
    # More environment for every process (e.g. PAYMESH_RISK__REDIS_URL), over the defaults.
    extra_env: dict[str, str] = field(default_factory=dict)
    # Its own topics and consumer groups on the session's broker: no member left
    # behind by another test's platform (a SIGKILLed process stays in its group
    # until its session times out) can hold up this platform's consumers.
    namespace: str = field(default_factory=lambda: f"t{secrets.token_hex(4)}")
    _logs: list[IO[bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ports = {name: free_port() for name in ORDER}
        self.admin_ports = {name: free_port() for name in ORDER}

    def admin_url(self, name: str) -> str:
        """The admin listener of `name`'s process."""
        return f"http://127.0.0.1:{self.admin_ports[name]}"

    @property
    def url(self) -> str:
        """The gateway."""
        return f"http://127.0.0.1:{self.ports['gateway']}"

    def topic(self, name: str) -> str:
        """`name` as this platform's processes see it on the broker."""
        return f"{self.namespace}.{name}"

    @property
    def credentials_file(self) -> Path:
        return self.workdir / "demo-credentials.json"

    def env(self) -> dict[str, str]:
        """The environment every process gets: each reads what concerns it."""
        env = {
            **os.environ,
            "PAYMESH_VAR_DIR": str(self.workdir / "var"),
            "PAYMESH_LOG_LEVEL": "INFO",
            "PAYMESH_KAFKA__BOOTSTRAP_SERVERS": self.kafka,
            "PAYMESH_KAFKA__NAMESPACE": self.namespace,
            # The first consumer-group join is slow with the defaults.
            "PAYMESH_KAFKA__SESSION_TIMEOUT_MS": "6000",
            "PAYMESH_KAFKA__MAX_POLL_INTERVAL_MS": "10000",
            "PAYMESH_PAYMENTS__RESUME_INTERVAL_S": "0.5",
            # The tests' webhook receivers listen on 127.0.0.1.
            "PAYMESH_WEBHOOKS__ALLOW_PRIVATE_ADDRESSES": "true",
            "PAYMESH_GATEWAY__DATABASE_URL": self.database_urls["gateway"],
            "PAYMESH_GATEWAY__HOST": "127.0.0.1",
            "PAYMESH_GATEWAY__PORT": str(self.ports["gateway"]),
        }
        for name in ORDER:  # each process reads its own service's
            env[f"PAYMESH_{name.upper()}__ADMIN_LISTEN"] = f"127.0.0.1:{self.admin_ports[name]}"
        for name in GRPC_SERVICES:
            prefix = f"PAYMESH_{name.upper()}__"
            address = f"127.0.0.1:{self.ports[name]}"
            env[prefix + "DATABASE_URL"] = self.database_urls[name]
            env[prefix + "LISTEN"] = address
            env[prefix + "TARGET"] = address
        env.update(self.extra_env)
        return env

    def log_path(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def start(self, name: str) -> None:
        """Start `paymesh serve <name>` (from the main thread: see _die_with_parent)."""
        assert threading.current_thread() is threading.main_thread()
        assert name not in self.procs or self.procs[name].poll() is not None
        log = self.log_path(name).open("ab")
        self._logs.append(log)
        self.procs[name] = subprocess.Popen(
            [str(PAYMESH), "serve", name],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            # Only prctl runs between fork and exec, and libc is loaded already.
            preexec_fn=_die_with_parent,
        )

    def healthy(self, name: str, *, ready: bool = True) -> bool:
        """One quick health check: gRPC health for a service (SERVING, or with `ready`
        False any answer: it serves calls), the JWKS for the gateway."""
        proc = self.procs[name]
        if proc.poll() is not None:
            raise AssertionError(f"{name} exited with {proc.returncode}:\n{self.tail(name)}")
        try:
            if name == "gateway":
                return httpx.get(f"{self.url}/.well-known/jwks.json", timeout=1).status_code == 200
            with grpc.insecure_channel(f"127.0.0.1:{self.ports[name]}") as channel:
                answer = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=""), timeout=1
                )
            return not ready or bool(answer.status == health_pb2.HealthCheckResponse.SERVING)
        except (httpx.HTTPError, grpc.RpcError):
            return False

    def wait_healthy(self, name: str, timeout_s: float = 60) -> None:
        """Block until `name` answers healthy (bounded)."""
        deadline = time.monotonic() + timeout_s
        while not self.healthy(name):
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} not healthy in {timeout_s}s:\n{self.tail(name)}")
            time.sleep(0.1)

    async def await_healthy(self, name: str, timeout_s: float = 60) -> None:
        """:meth:`wait_healthy` without blocking the event loop."""
        deadline = time.monotonic() + timeout_s
        while not await asyncio.to_thread(self.healthy, name):
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} not healthy in {timeout_s}s:\n{self.tail(name)}")
            await asyncio.sleep(0.1)

    async def await_answering(self, name: str, timeout_s: float = 120) -> None:
        """Until `name` answers its calls, ready or not (bounded). A consumer restarted
        after a SIGKILL is ready only once its group assigns it partitions, which waits
        for the killed member's session to time out; it serves calls meanwhile."""
        deadline = time.monotonic() + timeout_s
        while not await asyncio.to_thread(self.healthy, name, ready=False):
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} not answering in {timeout_s}s:\n{self.tail(name)}")
            await asyncio.sleep(0.1)

    def kill(self, name: str) -> None:
        """SIGKILL `name`: no shutdown of any kind, as in a power cut."""
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    def restart(self, name: str) -> None:
        """Start `name` again after it died."""
        self.restarts[name] += 1
        self.start(name)

    def stop(self, name: str) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time; always reaped."""
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def stop_all(self) -> None:
        """Stop every process, the gateway first; never leaves one running."""
        try:
            for name in reversed(ORDER):
                try:
                    self.stop(name)
                except Exception:
                    proc = self.procs.pop(name, None)
                    if proc is not None:
                        proc.kill()
                        proc.wait(timeout=10)
        finally:
            for proc in self.procs.values():  # pragma: no cover - belt and braces
                proc.kill()
                proc.wait(timeout=10)
            self.procs.clear()
            for log in self._logs:
                log.close()

    def tail(self, name: str, lines: int = 40) -> str:
        path = self.log_path(name)
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def bootstrap(self) -> subprocess.CompletedProcess[str]:
        """`paymesh bootstrap` as an operator runs it, with the gateway's settings."""
        return subprocess.run(
            [str(PAYMESH), "bootstrap", "--credentials", str(self.credentials_file)],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


@contextmanager
def distributed_platform(
    workdir: Path, kafka: str, *, env: dict[str, str] | None = None
) -> Iterator[Distributed]:
    """A fresh database per service, every service started healthy, the demo bootstrapped
    (`env`: more environment for every process)."""
    workdir.mkdir(parents=True, exist_ok=True)
    with pg_databases(ORDER) as urls:
        platform = Distributed(workdir, kafka, urls, extra_env=dict(env or {}))
        try:
            # All at once: each migrates its own database, and a service that calls
            # another one not serving yet gets UNAVAILABLE, which every caller retries.
            for name in ORDER:
                platform.start(name)
            for name in ORDER:
                platform.wait_healthy(name)
            done = platform.bootstrap()
            assert done.returncode == 0, done.stdout + done.stderr
            platform.creds = json.loads(platform.credentials_file.read_text())
            yield platform
        finally:
            platform.stop_all()


# --- Kafka, read and written straight --------------------------------------------


@dataclass(frozen=True)
class Record:
    """One message of the topic."""

    partition: int
    key: bytes | None
    value: bytes
    event: Event


def read_topic(
    kafka: str, topic: str, done: Callable[[list[Record]], bool], timeout_s: float = 60
) -> list[Record]:
    """Every message of `topic` from the beginning, until `done` says enough (bounded).

    The partitions are assigned, not joined as a group (no rebalance to wait for);
    end offsets are not trusted, so the caller says what it waits for.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": kafka,
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    records: list[Record] = []
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        deadline = time.monotonic() + timeout_s
        while not done(records):
            if time.monotonic() > deadline:
                break
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            value = msg.value() or b""
            records.append(Record(msg.partition() or 0, msg.key(), value, Event.from_json(value)))
    finally:
        consumer.close()
    return records


def partitions_of(kafka: str, topic: str) -> list[int]:
    consumer = Consumer({"bootstrap.servers": kafka, "group.id": "test-meta"})
    try:
        return sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    finally:
        consumer.close()


def produce(kafka: str, topic: str, messages: list[tuple[int, bytes | None, bytes]]) -> None:
    """Write (partition, key, value) messages with an idempotent producer; wait for acks."""
    producer = Producer({"bootstrap.servers": kafka, "enable.idempotence": True, "acks": "all"})
    failures: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    for partition, key, value in messages:
        producer.produce(topic, value=value, key=key, partition=partition, on_delivery=delivered)
        producer.poll(0)
    assert producer.flush(30) == 0, "messages left unsent"
    assert not failures, failures


# --- the fixture and the flows ----------------------------------------------------


@pytest.fixture(scope="module")
def distributed(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Distributed]:
    """The four services as processes, shared by this module's tests (each uses its own
    accounts, so none sees another's money)."""
    with distributed_platform(tmp_path_factory.mktemp("distributed"), kafka_bootstrap) as p:
        yield p


@asynccontextmanager
async def demo_api(platform: Distributed) -> Any:
    api = await Api.login(
        platform.url, platform.creds["client_id"], platform.creds["client_secret"]
    )
    try:
        yield api
    finally:
        await api.close()


async def open_account(api: Api, kind: str, currency: str = "USD") -> str:
    acct = await api.post("/v1/accounts", {"currency": currency, "type": kind}, key=_key())
    return str(acct["id"])


async def balance(api: Api, account_id: str) -> dict[str, int]:
    return dict((await api.get(f"/v1/accounts/{account_id}"))["balance"])


def _key() -> str:
    return str(uuid.uuid4())


@dataclass
class Flows:
    """What one run of the API flows did: objects and the events they must have caused."""

    customer: str
    merchant: str
    expected: set[tuple[str, str]] = field(default_factory=set)  # (subject, event type)
    succeeded: list[dict[str, Any]] = field(default_factory=list)


async def run_flows(api: Api) -> Flows:
    """Top-up, automatic, manual + partial capture, refund, cancel, declined; balances."""
    flows = Flows(await open_account(api, "customer"), await open_account(api, "merchant"))
    customer, merchant, expect = flows.customer, flows.merchant, flows.expected
    topup = await api.post(
        "/v1/topups", {"account_id": customer, "amount": 10_000, "currency": "USD"}, key=_key()
    )
    assert topup["status"] == "succeeded", topup
    expect.add((topup["id"], "topup.succeeded"))
    assert (await balance(api, customer))["available"] == 10_000

    pay = {"payer_account_id": customer, "payee_account_id": merchant, "currency": "USD"}
    auto = await api.post(
        "/v1/payments", {**pay, "amount": 2_500, "capture_method": "automatic"}, key=_key()
    )
    assert (auto["status"], auto["amount_captured"]) == ("succeeded", 2_500), auto
    assert auto["risk"]["decision"] == "approve"
    expect.add((auto["id"], "payment.succeeded"))
    flows.succeeded.append(auto)

    held = await api.post(
        "/v1/payments", {**pay, "amount": 1_000, "capture_method": "manual"}, key=_key()
    )
    assert held["status"] == "requires_capture", held
    expect.add((held["id"], "payment.requires_capture"))
    assert (await balance(api, customer))["available"] == 6_500  # the hold is unavailable
    captured = await api.post(
        f"/v1/payments/{held['id']}/capture", {"amount": 600}, key=_key(), status=200
    )
    assert (captured["status"], captured["amount_captured"]) == ("succeeded", 600), captured
    expect.add((held["id"], "payment.succeeded"))
    flows.succeeded.append(captured)

    refund = await api.post("/v1/refunds", {"payment_id": auto["id"], "amount": 500}, key=_key())
    assert refund["status"] == "succeeded", refund
    expect.add((refund["id"], "refund.succeeded"))

    canceled_hold = await api.post(
        "/v1/payments", {**pay, "amount": 300, "capture_method": "manual"}, key=_key()
    )
    assert canceled_hold["status"] == "requires_capture", canceled_hold
    canceled = await api.post(
        f"/v1/payments/{canceled_hold['id']}/cancel", {}, key=_key(), status=200
    )
    assert canceled["status"] == "canceled", canceled
    expect.update(
        {(canceled["id"], "payment.requires_capture"), (canceled["id"], "payment.canceled")}
    )

    declined = await api.post(
        "/v1/payments", {**pay, "amount": 4_000_000, "capture_method": "automatic"}, key=_key()
    )
    assert (declined["status"], declined["risk"]["decision"]) == ("failed", "decline"), declined
    expect.add((declined["id"], "payment.failed"))

    # 100.00 in, 25.00 + 6.00 paid, 5.00 refunded; the canceled hold came back.
    assert await balance(api, customer) == {"available": 7_400, "pending": 0, "posted": 7_400}
    assert await balance(api, merchant) == {"available": 2_600, "pending": 0, "posted": 2_600}
    return flows


# --- the tests --------------------------------------------------------------------


def test_bootstrap_writes_the_credentials_once_and_a_second_run_says_they_exist(
    distributed: Distributed,
) -> None:
    path = distributed.credentials_file
    assert set(distributed.creds) == {
        "client_id", "client_secret", "operator_client_id", "operator_client_secret",
    }  # fmt: skip
    assert path.stat().st_mode & 0o777 == 0o600
    again = distributed.bootstrap()
    assert again.returncode == 0, again.stderr
    assert "exist already" in again.stdout + again.stderr
    assert json.loads(path.read_text()) == distributed.creds


async def test_the_api_flows_move_money_across_four_processes(distributed: Distributed) -> None:
    async with demo_api(distributed) as api:
        await run_flows(api)
        missing = await api.http.get(f"/v1/payments/pay_{secrets.token_hex(8)}")
        assert missing.status_code == 404


async def test_fees_payouts_transfers_and_events_work_across_four_processes(
    distributed: Distributed,
) -> None:
    await money_flows(distributed)


async def test_every_state_change_reaches_kafka_once(distributed: Distributed) -> None:
    async with demo_api(distributed) as api:
        flows = await run_flows(api)
    subjects = {subject for subject, _ in flows.expected}

    def ours(records: list[Record]) -> list[Record]:
        return [r for r in records if r.event.subject in subjects]

    records = await asyncio.to_thread(
        read_topic,
        distributed.kafka,
        distributed.topic(TOPIC_PAYMENTS),
        lambda rs: {(r.event.subject, r.event.type) for r in ours(rs)} >= flows.expected,
    )
    mine = ours(records)
    seen = {(r.event.subject, r.event.type) for r in mine}
    assert seen == flows.expected, f"missing {flows.expected - seen}, extra {seen - flows.expected}"
    ids = Counter(r.event.id for r in mine)
    assert len(ids) == len(flows.expected), "one distinct event id per state change"
    assert set(ids.values()) == {1}, f"published more than once: {ids}"
    # Keyed by the object, so all of one object's events share a partition, in order.
    for subject in subjects:
        assert len({r.partition for r in mine if r.event.subject == subject}) == 1
        assert {r.key for r in mine if r.event.subject == subject} == {subject.encode()}


async def test_each_process_serves_its_own_services_metrics_and_readiness(
    distributed: Distributed,
) -> None:
    async with demo_api(distributed) as api:
        payer, payee = await open_account(api, "customer"), await open_account(api, "merchant")
        await api.post(
            "/v1/topups", {"account_id": payer, "amount": 5_000, "currency": "USD"}, key=_key()
        )
        body = {"payer_account_id": payer, "payee_account_id": payee, "amount": 1_000,
                "currency": "USD", "capture_method": "automatic"}  # fmt: skip
        assert (await api.post("/v1/payments", body, key=_key()))["status"] == "succeeded"
    server = "paymesh_grpc_server_handled_seconds_count"
    client = "paymesh_grpc_client_handled_seconds_count"
    handled = {
        "payments": "/paymesh.payments.v1.Payments/CreatePayment",
        "risk": "/paymesh.risk.v1.Risk/Decide",
        "accounts": "/paymesh.accounts.v1.Accounts/CreateTransfers",
    }
    for name in ORDER:
        samples = await scrape(distributed.admin_url(name))
        labelled = {s.labels["service"] for s in samples if "service" in s.labels}
        assert labelled == {name}, f"{name}'s process labels series {labelled}"
        assert total(samples, "paymesh_ready", service=name) == 1, name
        assert total(samples, "paymesh_db_transaction_duration_seconds_count", kind="write") >= 1
        if name in handled:
            ok = {"grpc_method": handled[name], "grpc_code": "OK"}
            assert total(samples, server, service=name, **ok) >= 1, name
        async with httpx.AsyncClient(base_url=distributed.admin_url(name), timeout=10) as http:
            assert (await http.get("/healthz")).status_code == 200
            ready = await http.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["services"] == {name: {"ready": True, "failed": {}}}
    gateway = await scrape(distributed.admin_url("gateway"))
    created = {"method": "POST", "route": "/v1/payments", "status": "201"}
    assert total(gateway, "paymesh_http_server_request_duration_seconds_count", **created) >= 1
    ok = {"grpc_method": handled["payments"], "grpc_code": "OK"}
    assert total(gateway, client, service="gateway", **ok) >= 1
    payments = await scrape(distributed.admin_url("payments"))
    for callee in ("risk", "accounts"):
        ok = {"grpc_method": handled[callee], "grpc_code": "OK"}
        assert total(payments, client, service="payments", **ok) >= 1, callee


async def payer_stats(platform: Distributed, payers: list[str]) -> dict[str, tuple[int, int]]:
    """risk's history features of `payers`: (succeeded_count, succeeded_amount) in USD."""
    conn = await asyncpg.connect(asyncpg_dsn(platform.database_urls["risk"]))
    try:
        rows = await conn.fetch(
            "SELECT payer_account_id, succeeded_count, succeeded_amount FROM payer_stats"
            " WHERE payer_account_id = ANY($1::text[]) AND currency = 'USD'",
            payers,
        )
    finally:
        await conn.close()
    return {r["payer_account_id"]: (r["succeeded_count"], r["succeeded_amount"]) for r in rows}


async def wait_for_stats(
    platform: Distributed, expected: dict[str, tuple[int, int]], timeout_s: float = 60
) -> dict[str, tuple[int, int]]:
    """Poll risk's table until it shows `expected` (bounded); return what it last showed."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = await payer_stats(platform, list(expected))
        if got == expected or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.2)


def sentinel(partition: int, run: str) -> tuple[int, bytes, bytes]:
    """A payment.succeeded of a made-up payer, written to `partition`."""
    event = Event(
        id=f"evt_sentinel_{run}_{partition}",
        source="test",
        type="payment.succeeded",
        subject=f"pay_sentinel_{run}_{partition}",
        time="2026-01-01T00:00:00Z",
        tenant="ten_sentinel",
        data={
            "id": f"pay_sentinel_{run}_{partition}",
            "payer_account_id": f"acct_sentinel_{run}_{partition}",
            "currency": "USD",
            "amount_captured": 1,
        },
    )
    return partition, event.subject.encode(), event.to_json()


async def test_risk_counts_each_succeeded_payment_once_even_when_kafka_repeats_it(
    distributed: Distributed,
) -> None:
    async with demo_api(distributed) as api:
        first, second = await run_flows(api), await run_flows(api)
    expected = {
        flows.customer: (len(flows.succeeded), sum(p["amount_captured"] for p in flows.succeeded))
        for flows in (first, second)
    }
    assert expected[first.customer] == (2, 3_100)
    got = await wait_for_stats(distributed, expected)
    assert got == expected, "risk did not count every succeeded payment"

    # Every payment event so far, three times more, straight to Kafka.
    records = await asyncio.to_thread(
        read_topic,
        distributed.kafka,
        distributed.topic(TOPIC_PAYMENTS),
        lambda rs: {r.event.subject for r in rs} >= {s for s, _ in second.expected},
    )
    assert records
    kafka, topic = distributed.kafka, distributed.topic(TOPIC_PAYMENTS)
    copies = [(r.partition, r.key, r.value) for r in records] * 3
    await asyncio.to_thread(produce, kafka, topic, copies)
    # Then a made-up payer on each partition: risk consumes a partition in order,
    # so when each one counts, every copy before it has been seen.
    run = secrets.token_hex(4)
    partitions = await asyncio.to_thread(partitions_of, kafka, topic)
    await asyncio.to_thread(produce, kafka, topic, [sentinel(p, run) for p in partitions])
    marks = {f"acct_sentinel_{run}_{p}": (1, 1) for p in partitions}
    assert await wait_for_stats(distributed, marks) == marks, "risk stopped consuming"

    assert await payer_stats(distributed, list(expected)) == expected


async def test_settlement_and_reconciliation_work_across_the_processes(
    distributed: Distributed,
) -> None:
    """A day of payments settles through payments' process into a pain.001; the simulated
    bank's statement with a return reconciles, the return reversing its payout once."""
    api = await settlement_helpers.tenant_with_fees(distributed.url, distributed.creds)
    try:
        payer = await settlement_helpers.open_account(api, "customer")
        await api.post(
            "/v1/topups", {"account_id": payer, "amount": 100_000, "currency": "EUR"}, key=_key()
        )
        merchants = [
            await settlement_helpers.open_account(api, "merchant", bank)
            for bank in settlement_helpers.BANKS
        ]
        first = await settlement_helpers.pay(api, payer, merchants[0], 10_000)
        await settlement_helpers.pay(api, payer, merchants[1], 2_000)
        await settlement_helpers.pay(api, payer, merchants[2], 3_000)
        await settlement_helpers.refund(api, first["id"], 1_000)
        run = await settlement_helpers.settle(api)
        nets = {x["account_id"]: x["net"] for x in run["lines"]}
        assert nets == {merchants[0]: 8_870, merchants[1]: 1_950, merchants[2]: 2_940}
        xml = await settlement_helpers.pain001(api, run["payout_batch_id"])
        settlement_helpers.check_pain001(xml, {x["payout_id"]: x["net"] for x in run["lines"]})
        lines = {x["account_id"]: x for x in run["lines"]}
        returned = lines[merchants[2]]["payout_id"]
        statement = settlement_helpers.bank_statement(xml, f"D-{_key()[:8]}", **{returned: "AM04"})
        body = settlement_helpers.camt(statement)
        imported = await settlement_helpers.import_statement(api, body)
        assert imported["counts"] == {"matched": 3, "returned": 1}
        [returned_break] = await settlement_helpers.breaks(api, imported["id"])
        assert (returned_break["type"], returned_break["object_id"]) == ("returned", returned)
        # Paid out to 0, then the return gave the merchant its 29.40 back, once.
        assert await settlement_helpers.available(api, merchants[2]) == 2_940
        await settlement_helpers.import_statement(api, body, status=409)
        assert await settlement_helpers.available(api, merchants[2]) == 2_940
    finally:
        await api.close()


# Its module-scoped fixture (a platform, a rendered chart, a browser) is made once, on one
# worker (`make test` runs pytest-xdist with --dist loadgroup).
pytestmark = pytest.mark.xdist_group("test_distributed")
