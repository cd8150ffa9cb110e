"""Readiness checked in the background and the admin listener that reports it, over real
HTTP: /healthz, /readyz naming the failed check, /metrics, a taken port refused."""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY

from paymesh.launcher import Platform
from paymesh.platform.admin import AdminServer
from paymesh.platform.bus import InProcessBus
from paymesh.platform.health import Check, NotReady, Readiness
from paymesh.settings import Settings
from tests.conftest import free_port


class Switch:
    """A dependency a test turns off and on: the probe of a check."""

    def __init__(self) -> None:
        self.up = True
        self.calls = 0

    async def probe(self) -> None:
        self.calls += 1
        if not self.up:
            raise ConnectionRefusedError("the database does not answer")


async def _hang() -> None:
    await asyncio.sleep(60)


async def _not_assigned() -> None:
    raise NotReady("risk/kafka: not assigned yet")


def ready_gauge(service: str) -> float | None:
    return REGISTRY.get_sample_value("paymesh_ready", {"service": service})


async def test_readiness_reports_each_failed_check_and_why() -> None:
    service = f"svc{secrets.token_hex(3)}"
    readiness = Readiness(service, timeout_s=0.2)
    assert not readiness.ready  # before start
    assert ready_gauge(service) == 0
    db = Switch()
    await readiness.start(
        [Check("database", db.probe), Check("redis", _hang), Check("consumers", _not_assigned)]
    )
    try:
        assert readiness.failures == {
            "redis": "no answer in 0.2 s",
            "consumers": "risk/kafka: not assigned yet",
        }
        db.up = False
        await readiness.refresh()
        assert readiness.failures["database"].startswith("builtins.ConnectionRefusedError")
        assert ready_gauge(service) == 0
    finally:
        await readiness.stop()


async def test_readiness_is_checked_in_the_background_not_when_asked() -> None:
    service = f"svc{secrets.token_hex(3)}"
    readiness = Readiness(service, interval_s=0.05)
    db = Switch()
    await readiness.start([Check("database", db.probe)])
    try:
        assert readiness.ready
        assert ready_gauge(service) == 1
        db.up = False
        for _ in range(100):
            if not readiness.ready:
                break
            await asyncio.sleep(0.02)
        assert not readiness.ready
        assert ready_gauge(service) == 0
        db.up = True
        for _ in range(100):
            if readiness.ready:
                break
            await asyncio.sleep(0.02)
        assert readiness.ready
        assert ready_gauge(service) == 1
        calls = db.calls
        for _ in range(20):  # asking costs nothing
            assert readiness.ready
        assert db.calls == calls
    finally:
        await readiness.stop()
    assert not readiness.ready
    assert ready_gauge(service) == 0


@pytest.fixture
async def admin() -> AsyncIterator[tuple[AdminServer, Switch, httpx.AsyncClient]]:
    """An admin listener for two services; `one`'s database is the switch, `two` never
    starts."""
    one, two = f"one{secrets.token_hex(3)}", f"two{secrets.token_hex(3)}"
    server = AdminServer("127.0.0.1:0", [one, two])
    readiness = Readiness(one, interval_s=0.05)
    server.attach(readiness)
    db = Switch()
    await readiness.start([Check("database", db.probe)])
    port = await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            yield server, db, http
    finally:
        await server.stop()
        await readiness.stop()


async def test_readyz_is_503_naming_each_service_that_cannot_serve_and_why(
    admin: tuple[AdminServer, Switch, httpx.AsyncClient],
) -> None:
    server, db, http = admin
    one, two = server.services
    db.up = False
    await asyncio.sleep(0.3)
    r = await http.get("/readyz")
    assert r.status_code == 503
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["status"] == "not_ready"
    assert body["services"][two] == {"ready": False, "failed": {"started": "not started"}}
    assert body["services"][one]["ready"] is False
    assert body["services"][one]["failed"]["database"].startswith("builtins.ConnectionRefused")
    assert (await http.get("/healthz")).status_code == 200  # alive, all the same


async def test_readyz_is_200_once_every_service_can_serve(
    admin: tuple[AdminServer, Switch, httpx.AsyncClient],
) -> None:
    server, _, http = admin
    one, two = server.services
    late = Readiness(two)
    server.attach(late)
    await late.start([])
    try:
        r = await http.get("/readyz")
        assert r.status_code == 200, r.text
        assert r.json() == {
            "status": "ready",
            "services": {one: {"ready": True, "failed": {}}, two: {"ready": True, "failed": {}}},
        }
        metrics = await http.get("/metrics")
        assert metrics.status_code == 200
        assert f'paymesh_ready{{service="{one}"}} 1.0' in metrics.text
        openmetrics = await http.get(
            "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )
        assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
        assert openmetrics.text.endswith("# EOF\n")
        assert (await http.get("/")).status_code == 404
        assert (await http.delete("/readyz")).status_code == 405
    finally:
        await late.stop()


async def test_an_admin_address_in_use_is_refused_at_start() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = AdminServer(f"127.0.0.1:{port}", ["accounts"])
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
            await server.start()
        await server.stop()


async def test_services_naming_one_admin_address_share_a_listener_and_an_empty_one_has_none(
    tmp_path: Path,
) -> None:
    shared, own = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    settings = Settings(
        var_dir=tmp_path,
        accounts={"admin_listen": shared},
        payments={"admin_listen": shared},
        risk={"admin_listen": own},
        webhooks={"admin_listen": ""},
        gateway={"admin_listen": ""},
    )
    platform = Platform(settings, bus=InProcessBus())
    await platform._start_admin()
    try:
        listeners = {server.listen: server.services for server in platform.admin}
        assert listeners == {shared: ("accounts", "payments"), own: ("risk",)}
        assert platform.admin_port("payments") == int(shared.rsplit(":", 1)[1])
        assert platform.admin_port("webhooks") is None
        async with httpx.AsyncClient(timeout=5) as http:
            r = await http.get(f"http://{shared}/readyz")  # nothing started yet
        assert r.status_code == 503
        assert r.json()["services"]["accounts"]["failed"] == {"started": "not started"}
    finally:
        await platform.stop()
    assert platform.admin == []
