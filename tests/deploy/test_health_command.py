"""`paymesh health <service>`: the image's HEALTHCHECK, against real servers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest
from typer.testing import CliRunner

from paymesh.cli import app
from paymesh.platform.admin import AdminServer
from paymesh.platform.health import Check, Readiness
from paymesh.platform.rpc import GrpcServer
from tests.conftest import free_port


def health(service: str, **env: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["health", service, "--timeout", "2"], env=env)
    return result.exit_code, result.output


async def test_a_serving_grpc_service_is_healthy_and_a_stopped_one_is_not() -> None:
    port = free_port()
    server = GrpcServer(
        f"127.0.0.1:{port}", lambda _s: None, ["paymesh.accounts.v1.Accounts"], service="accounts"
    )
    await server.start()
    # No admin listener: gRPC health it is.
    env = {"PAYMESH_ACCOUNTS__LISTEN": f"0.0.0.0:{port}", "PAYMESH_ACCOUNTS__ADMIN_LISTEN": ""}
    try:
        code, output = await asyncio.to_thread(health, "accounts", **env)
        assert (code, output.strip()) == (0, "accounts: SERVING")
    finally:
        await server.stop(0)
    code, output = await asyncio.to_thread(health, "accounts", **env)
    assert code == 1
    assert output.strip() == f"accounts: {grpc.StatusCode.UNAVAILABLE.name}"


class _Jwks(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        ok = self.path == "/.well-known/jwks.json"
        self.send_response(200 if ok else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"keys": []}' if ok else b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def jwks_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Jwks)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_the_gateway_is_healthy_when_its_jwks_answers(jwks_port: int) -> None:
    code, output = health(
        "gateway", PAYMESH_GATEWAY__PORT=str(jwks_port), PAYMESH_GATEWAY__ADMIN_LISTEN=""
    )
    assert (code, output.strip()) == (0, "gateway: SERVING")


def test_the_gateway_is_unhealthy_when_nothing_listens() -> None:
    code, output = health(
        "gateway", PAYMESH_GATEWAY__PORT=str(free_port()), PAYMESH_GATEWAY__ADMIN_LISTEN=""
    )
    assert code == 1
    assert output.startswith("gateway: UNREACHABLE")


def test_an_unknown_service_is_a_usage_error() -> None:
    code, _ = health("ledger")
    assert code == 2


async def test_with_an_admin_listener_health_is_its_readyz_and_says_what_failed() -> None:
    server, readiness = AdminServer("127.0.0.1:0", ["payments"]), Readiness("payments")
    server.attach(readiness)
    database_up = True

    async def database() -> None:
        if not database_up:
            raise ConnectionRefusedError("no answer")

    await readiness.start([Check("database", database)])
    port = await server.start()
    env = {"PAYMESH_PAYMENTS__ADMIN_LISTEN": f"0.0.0.0:{port}"}  # as in the container
    try:
        code, output = await asyncio.to_thread(health, "payments", **env)
        assert (code, output.strip()) == (0, "payments: SERVING")
        database_up = False
        await readiness.refresh()
        code, output = await asyncio.to_thread(health, "payments", **env)
        assert code == 1
        assert output.strip() == (
            "payments: NOT_SERVING (database: builtins.ConnectionRefusedError: no answer)"
        )
    finally:
        await server.stop()
        await readiness.stop()
    code, output = await asyncio.to_thread(health, "payments", **env)
    assert code == 1
    assert output.startswith("payments: UNREACHABLE")
