"""What lets every service run as several processes: a dependency that is down is
"unavailable" at each edge (never a 500 or UNKNOWN), replicas migrate one after the
other, and a second risk process on SQL velocity windows is refused."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from pathlib import Path

import grpc
import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy.exc import DBAPIError, OperationalError

from paymesh.gateway.problems import install_problem_handlers
from paymesh.payments.app import MIGRATIONS as PAYMENTS_MIGRATIONS
from paymesh.platform.bus import InProcessBus
from paymesh.platform.db import Database
from paymesh.platform.migrations import upgrade
from paymesh.platform.rpc import METADATA_ERROR_CODE, GrpcServer, open_channel
from paymesh.platform.unavailable import is_unavailable
from paymesh.risk import app as risk_app
from paymesh.settings import Settings
from tests.conftest import free_port


def test_connection_failures_are_unavailable_and_bugs_are_not() -> None:
    refused = ConnectionRefusedError(111, "refused")
    assert is_unavailable(refused)
    assert is_unavailable(DBAPIError("SELECT 1", {}, refused, connection_invalidated=True))
    locked = OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked"))
    assert is_unavailable(locked)
    wrapped = RuntimeError("wrapped")
    wrapped.__cause__ = refused
    assert is_unavailable(wrapped)

    assert not is_unavailable(ValueError("a bug"))
    assert not is_unavailable(FileNotFoundError(2, "no such file"))
    no_table = OperationalError("SELECT", {}, sqlite3.OperationalError("no such table: x"))
    assert not is_unavailable(no_table)


async def test_the_gateway_answers_a_database_that_is_down_with_503_and_retry_after() -> None:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/down")
    async def down() -> None:
        # What asyncpg raises while PostgreSQL restarts, wrapped as SQLAlchemy does.
        raise DBAPIError("SELECT 1", {}, ConnectionRefusedError(111, "refused"), False)

    @app.get("/bug")
    async def bug() -> None:
        raise ValueError("a bug")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
        r = await http.get("/down")
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] == "1"
        assert r.json()["code"] == "service_unavailable"
        r = await http.get("/bug")
        assert r.status_code == 500
        assert r.json()["code"] == "internal_error"


async def test_a_grpc_call_failing_on_a_database_that_is_down_is_unavailable() -> None:
    def register(server: grpc.aio.Server) -> None:
        async def fail(_request: bytes, _context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
            try:
                socket.create_connection(("127.0.0.1", free_port()), timeout=1)
            except OSError as exc:
                raise DBAPIError("SELECT 1", {}, exc, connection_invalidated=True) from exc
            return b""

        handler = grpc.unary_unary_rpc_method_handler(fail)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("test.Down", {"Call": handler}),)
        )

    server = GrpcServer(f"127.0.0.1:{free_port()}", register, ["test.Down"], service="test")
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        call = channel.unary_unary("/test.Down/Call")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(b"", timeout=5)
        assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
        trailers = dict(caught.value.trailing_metadata() or ())
        assert trailers.get(METADATA_ERROR_CODE) == "unavailable"
        # The server itself is fine: its health says so.
        health = health_pb2_grpc.HealthStub(channel)
        answer = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await channel.close()
        await server.stop(0)


@pytest.mark.postgres
async def test_replicas_migrating_one_database_at_once_both_succeed(pg_url: str) -> None:
    dbs = [Database(pg_url), Database(pg_url)]
    try:
        await asyncio.gather(*(upgrade(db, PAYMENTS_MIGRATIONS) for db in dbs))
        async with dbs[0].read() as conn:
            version = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).all()
        assert len(version) == 1
    finally:
        for db in dbs:
            await db.dispose()


@pytest.mark.postgres
async def test_a_second_risk_process_without_redis_is_refused_on_postgresql(
    pg_url: str, tmp_path: Path
) -> None:
    def settings() -> Settings:
        return Settings(
            var_dir=tmp_path,
            risk={"database_url": pg_url, "listen": f"127.0.0.1:{free_port()}"},
        )

    await risk_app.migrate(settings())
    first = risk_app.create(settings(), bus=InProcessBus())
    second = risk_app.create(settings(), bus=InProcessBus())
    await first.start()
    try:
        with pytest.raises(RuntimeError, match=r"risk\.redis_url"):
            await second.start()
        await second.stop()
    finally:
        await first.stop()
    # Once the first is gone, a new one may start.
    third = risk_app.create(settings(), bus=InProcessBus())
    await third.start()
    await third.stop()


async def test_a_channel_to_two_replicas_carries_on_when_one_is_gone() -> None:
    servers = []
    for _ in range(2):
        server = GrpcServer(f"127.0.0.1:{free_port()}", lambda _s: None, [], service="test")
        await server.start()
        servers.append(server)
    target = "ipv4:" + ",".join(f"127.0.0.1:{s.port}" for s in servers)
    channel = open_channel(target)
    health = health_pb2_grpc.HealthStub(channel)
    try:
        for _ in range(4):
            answer = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        await servers[0].stop(0)
        for _ in range(10):  # every call answered: the channel retries on the other one
            answer = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await channel.close()
        for server in servers:
            await server.stop(0)
